// The freezing policy: every preset and pattern selection trains exactly the intended parameters. One optimizer
// step per selection, then EVERY parameter is compared: changed iff trainable. The expected sets are written here
// from parameter names, independently of the group code. Also the summary, errors and leaks of a training step.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { AdamW, manualSeed } from '@chimera/core';
import { expectNoLeaks, setupTestBackend } from '@chimera/core/testing';
import {
  compose,
  earlyFusion,
  gatedCrossAttention,
  resolveTrainable,
  type ComposedModel,
  type ComposedSample,
  type ParameterGroup,
  type TrainableSelection,
} from '../src/index';
import { ProbeStrategy } from './helpers/probe-strategy';
import { BOS, IMAGE_ID, TOY_ID, openGates, sameValues, snapshot, testImage, tinyBackbone, tinyImageModality, toyModality } from './helpers/toy';

/** Three modalities, three families: image early fusion (Q-Former + MLP), toy cross-attention, probe with a head. */
function buildModel(): { model: ComposedModel; batch: ComposedSample[] } {
  manualSeed(7);
  const image = tinyImageModality();
  const toy = toyModality();
  const probe = toyModality({ name: 'probe', featureDim: 4 });
  const model = compose({
    backbone: tinyBackbone(),
    modalities: { image, toy, probe },
    fusion: {
      image: earlyFusion({ resampler: { type: 'qformer', numQueries: 3, depth: 1, heads: 2 } }),
      toy: gatedCrossAttention({ layers: 'all', resampler: { type: 'perceiver', numLatents: 2, depth: 1, heads: 2, headDim: 4 } }),
      probe: new ProbeStrategy(),
    },
    placeholders: { image: IMAGE_ID, toy: TOY_ID },
  });
  openGates(model, 0.5); // closed gates would keep the blocks' inner weights from any gradient
  const batch: ComposedSample[] = [
    [
      { text: [BOS, 5], trained: false },
      { modality: 'image', item: image.prepare(testImage(1)) },
      { modality: 'toy', item: toy.prepare({ cls: 1 }) },
      { text: [6, 7, 8] },
      { modality: 'probe', item: probe.prepare({ cls: 2, tokens: 2 }) },
      { text: [9] },
    ],
    [{ modality: 'toy', item: toy.prepare({ cls: 2 }) }, { text: [4, 3, 2] }],
  ];
  return { model, batch };
}

const kinds = {
  backbone: (n: string) => n.startsWith('llm.') && !n.startsWith('llm.model.inserted.') && !n.startsWith('llm.heads.'),
  encoder: (n: string) => /^(image|toy|probe)\.encoder\./.test(n) || /^(toy|probe)\.encoder\.(weight|bias)$/.test(n),
  connector: (n: string) => /^image\.(resampler|projector)\./.test(n) || n.startsWith('toy.resampler.') || n.startsWith('probe.proj.'),
  extension: (n: string) => n.startsWith('llm.model.inserted.'),
  head: (n: string) => n.startsWith('llm.heads.'),
};
type Kind = keyof typeof kinds;
const of = (...chosen: Kind[]) => (n: string) => chosen.some((k) => kinds[k](n));

const cases: [string, TrainableSelection, (name: string) => boolean][] = [
  ['projector', 'projector', of('connector')],
  ['projector+llm', 'projector+llm', of('connector', 'backbone', 'extension', 'head')],
  ['fusion', 'fusion', of('connector', 'extension', 'head')],
  ['llm', 'llm', of('backbone')],
  ['all', 'all', of('backbone', 'encoder', 'connector', 'extension', 'head')],
  ['janus-stage1', 'janus-stage1', of('connector', 'head')],
  ['janus-stage2', 'janus-stage2', of('connector', 'backbone', 'extension', 'head')],
  ['janus-stage3', 'janus-stage3', of('backbone', 'encoder', 'connector', 'extension', 'head')],
  ['groups by name and glob', ['image.projector', '*.xattn'], (n) => n.startsWith('image.projector.') || kinds.extension(n)],
  ['train minus freeze', { train: 'llm', freeze: 'llm.model.layers.0' }, (n) => kinds.backbone(n) && !n.startsWith('llm.model.layers.0.')],
  ['regexp over parameter names', [/\.encoder\./], (n) => /\.encoder\./.test(n)],
];

describe('freezing presets (cpu)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('every parameter belongs to a group of the expected kind', () => {
    const { model } = buildModel();
    const groups = model.parameterGroups();
    expect(groups.map((g) => `${g.name}:${g.kind}`)).toEqual([
      'llm:backbone',
      'image.encoder:encoder',
      'toy.encoder:encoder',
      'probe.encoder:encoder',
      'image.resampler:connector',
      'image.projector:connector',
      'toy.resampler:connector',
      'toy.xattn:extension',
      'probe.proj:connector',
      'probe.head:head',
    ]);
    for (const group of groups) for (const name of group.parameters) expect(kinds[group.kind as Kind](name)).toBe(true);
    expect(groups.reduce((n, g) => n + g.parameters.length, 0)).toBe(model.namedParameters().length);
    model.dispose();
  });

  it.each(cases)('%s: one optimizer step changes exactly the trainable parameters', async (_, selection, expected) => {
    const { model, batch } = buildModel();
    model.trainOnly(selection);
    const names = model.namedParameters().map(([n]) => n);
    for (const [name, v] of model.namedParameters()) expect([name, v.trainable]).toEqual([name, expected(name)]);
    const before = snapshot(model);
    const optimizer = new AdamW(model, { learningRate: 0.01, weightDecay: 0 });
    await expectNoLeaks(() => {
      const { value, grads } = tf.variableGrads(() => model.loss(batch), model.trainableVariables());
      optimizer.applyGradients(grads);
      tf.dispose([value, ...Object.values(grads)]);
    }, 'training step');
    const after = snapshot(model);
    const changed = names.filter((n) => !sameValues(before.get(n)!, after.get(n)!));
    expect(changed.sort()).toEqual(names.filter(expected).sort());
    optimizer.dispose();
    model.dispose();
  });

  it("'none' freezes everything", () => {
    const { model } = buildModel();
    const summary = model.trainOnly('none');
    expect(model.trainableVariables()).toHaveLength(0);
    expect(summary.trainableParameters).toBe(0);
    model.dispose();
  });

  it('the summary lists every group with its size and trainable state', () => {
    const { model } = buildModel();
    model.trainOnly({ train: ['image.projector', 'toy.xattn'], freeze: /attn_gate$/ });
    const summary = model.summary();
    const byName = new Map(summary.groups.map((g) => [g.name, g]));
    expect(byName.get('image.projector')!.trainable).toBe('yes');
    expect(byName.get('llm')!.trainable).toBe('no');
    expect(byName.get('toy.xattn')!.trainable).toBe('partial');
    expect(byName.get('toy.xattn')!.trainableTensors).toBe(byName.get('toy.xattn')!.tensors - 2); // two blocks' attn_gate
    expect(summary.totalParameters).toBe(model.countParameters());
    expect(summary.trainableParameters).toBe(model.countParameters({ trainableOnly: true }));
    const projector = byName.get('image.projector')!;
    expect(projector.parameters).toBe(projector.names.reduce((n, name) => n + model.stateDict()[name]!.size, 0));
    const lines = summary.table.split('\n');
    expect(lines[0]).toMatch(/^group\s+kind\s+params\s+tensors\s+trainable$/);
    expect(lines).toHaveLength(summary.groups.length + 2);
    expect(lines.find((l) => l.startsWith('toy.xattn'))).toMatch(/partial \(\d+\/\d+ tensors\)$/);
    expect(lines.at(-1)).toMatch(/^total .* trainable \(\d+\.\d%\)$/);
    expect(String(summary)).toBe(summary.table);
    model.dispose();
  });

  it('typos and presets that select nothing are errors naming the groups', () => {
    const { model } = buildModel();
    expect(() => model.trainOnly('projecter' as TrainableSelection)).toThrow(/unknown freezing preset 'projecter'; presets: projector, projector\+llm/);
    expect(() => model.trainOnly(['image.projecter'])).toThrow(/pattern image\.projecter matches no parameter group or parameter; groups: llm \(backbone\)/);
    expect(() => model.trainOnly({ train: 'llm', freeze: 'llm.model.layers.9' })).toThrow(/freeze pattern llm\.model\.layers\.9 matches no/);
    model.dispose();
    const toy = toyModality();
    const bare = compose({ backbone: tinyBackbone(), modalities: { toy }, fusion: { toy: gatedCrossAttention({ layers: [1], resampler: false }) } });
    expect(() => bare.trainOnly('projector')).toThrow(/preset 'projector' trains connector groups, but this model has none/);
    bare.dispose();
  });
});

describe('presets over group kinds (no model)', () => {
  const groups: ParameterGroup[] = [
    { name: 'llm', kind: 'backbone', description: '', parameters: ['llm.a'] },
    { name: 'image.encoder', kind: 'encoder', description: '', parameters: ['image.encoder.w'] },
    { name: 'gen.codec', kind: 'codec', description: '', parameters: ['gen.codec.w'] },
    { name: 'image.projector', kind: 'connector', description: '', parameters: ['image.projector.w'] },
    { name: 'gen.head', kind: 'head', description: '', parameters: ['llm.heads.gen.w'] },
  ];
  it.each([
    ['janus-stage1', ['image.projector.w', 'llm.heads.gen.w']],
    ['janus-stage2', ['llm.a', 'image.projector.w', 'llm.heads.gen.w']],
    ['janus-stage3', ['llm.a', 'image.encoder.w', 'image.projector.w', 'llm.heads.gen.w']],
    ['all', ['llm.a', 'image.encoder.w', 'gen.codec.w', 'image.projector.w', 'llm.heads.gen.w']],
  ] as const)('%s', (preset, expected) => {
    expect([...resolveTrainable(preset, groups)].sort()).toEqual([...expected].sort());
  });

  it("a string naming a group selects that group only; otherwise it is a glob over parameter names", () => {
    expect([...resolveTrainable(['llm'], groups)]).toEqual(['llm.a']);
    expect([...resolveTrainable(['llm.**'], groups)].sort()).toEqual(['llm.a', 'llm.heads.gen.w']);
    expect([...resolveTrainable(['*.projector'], groups)]).toEqual(['image.projector.w']);
  });
});
