import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, setupTestBackend } from '../src/testing/backend';
import { expectNoLeaksSync } from '../src/testing/leaks';
import {
  ModalityModule,
  defaultPath,
  requirePath,
  supportedPaths,
  validateModality,
  type Modality,
} from '../src/modality/contract';
import { ModalityRegistry } from '../src/modality/registry';
import { mediaSegment } from '../src/modality/segments';
import { Linear } from '../src/nn/linear';
import { CELL_WIDTH, TOY_CODEBOOK_SIZE, createToyModality, quantise, toyRaw } from './helpers/toy-modality';

function bareModality(name: string, paths: Partial<Modality> = {}): Modality {
  return { name, prepare: (raw) => raw, tokensFor: () => 1, ...paths };
}

describe('modality contract', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('lists supported paths and picks the first as default', () => {
    const toy = createToyModality();
    expect(supportedPaths(toy)).toEqual(['continuousIn', 'discrete', 'continuousOut']);
    expect(defaultPath(toy)).toBe('continuousIn');
    const outOnly = bareModality('latent', { continuousOut: toy.continuousOut });
    expect(supportedPaths(outOnly)).toEqual(['continuousOut']);
    expect(defaultPath(outOnly)).toBe('continuousOut');
    toy.module.dispose();
  });

  it('names the missing path and what is supported', () => {
    const toy = createToyModality();
    const audio = bareModality('audio', { continuousIn: toy.continuousIn });
    expect(() => requirePath(audio, 'discrete')).toThrow(
      "modality 'audio' has no discrete path (it supports: continuousIn)",
    );
    expect(requirePath(toy, 'discrete')).toBe(toy.discrete);
    expect(() => defaultPath(bareModality('empty'))).toThrow(/supports no path/);
    toy.module.dispose();
  });

  it('rejects names that cannot be parameter prefixes', () => {
    const toy = createToyModality();
    expect(() => validateModality(bareModality('image.big', { continuousIn: toy.continuousIn }))).toThrow(/no dots/);
    expect(() => validateModality(bareModality('', { continuousIn: toy.continuousIn }))).toThrow(/invalid/);
    expect(validateModality(bareModality('image_2', { continuousIn: toy.continuousIn })).name).toBe('image_2');
    toy.module.dispose();
  });

  it('sizes media segments from the modality, per path', () => {
    const toy = createToyModality();
    const item = toy.prepare(toyRaw(3, 5));
    expect(mediaSegment(toy, item)).toEqual({ modality: 'toy', kind: 'features', tokens: 15, grid: { rows: 3, cols: 5 } });
    const small = toy.prepare(toyRaw(2, 2));
    expect(mediaSegment(toy, small, { kind: 'latents', trained: false })).toEqual({
      modality: 'toy',
      kind: 'latents',
      trained: false,
      tokens: 4,
      grid: { rows: 2, cols: 2 },
    });
    // A cross-attended item occupies no positions of its own.
    expect(mediaSegment(toy, item, { kind: 'cross', marker: [9] }).tokens).toBeUndefined();
    const textOnly = bareModality('words', { continuousIn: toy.continuousIn });
    expect(() => mediaSegment(textOnly, item, { kind: 'codes' })).toThrow(/has no discrete path/);
    toy.module.dispose();
  });
});

describe('ModalityRegistry', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('looks modalities up by name and routes them by registration order', () => {
    const image = createToyModality({ name: 'image' });
    const audio = createToyModality({ name: 'audio' });
    const registry = new ModalityRegistry({ image, audio });
    expect(registry.names()).toEqual(['image', 'audio']);
    expect(registry.get('audio')).toBe(audio);
    expect(registry.routingIndex('image')).toBe(1);
    expect(registry.routingIndex('audio')).toBe(2);
    expect(registry.has('video')).toBe(false);
    image.module.dispose();
    audio.module.dispose();
  });

  it('fails on unknown, duplicate and misnamed modalities, naming the known ones', () => {
    const image = createToyModality({ name: 'image' });
    const audio = createToyModality({ name: 'audio' });
    const registry = new ModalityRegistry([image, audio]);
    expect(() => registry.get('imgae')).toThrow("unknown modality 'imgae'; known modalities: image, audio");
    expect(() => registry.routingIndex('video')).toThrow(/known modalities: image, audio/);
    expect(() => registry.register(createToyModality({ name: 'image' }))).toThrow(/already registered/);
    expect(() => new ModalityRegistry({ picture: image })).toThrow(/key 'picture' holds modality 'image'/);
    image.module.dispose();
    audio.module.dispose();
  });

  it('exposes parameters under the modality name so freezing can address them', () => {
    const image = createToyModality({ name: 'image' });
    const audio = createToyModality({ name: 'audio' });
    const registry = new ModalityRegistry([image, audio]);
    const names = registry.namedParameters().map(([n]) => n);
    expect(names).toEqual([
      'image.encoder.weight',
      'image.encoder.bias',
      'image.codebook.weight',
      'audio.encoder.weight',
      'audio.encoder.bias',
      'audio.codebook.weight',
    ]);
    expect(registry.freeze('image.encoder.*')).toBe(2);
    const trainable = registry.namedParameters().filter(([, v]) => v.trainable).map(([n]) => n);
    expect(trainable).toEqual(['image.codebook.weight', 'audio.encoder.weight', 'audio.encoder.bias', 'audio.codebook.weight']);
    expect(registry.freeze('audio')).toBe(3);
    expect(registry.unfreeze('**')).toBe(6);
    expect(registry.namedParameters().every(([, v]) => v.trainable)).toBe(true);
    image.module.dispose();
    audio.module.dispose();
  });

  it('ModalityModule names children by role', () => {
    const module = new ModalityModule({ encoder: new Linear(2, 3), projector: new Linear(3, 4, { bias: false }) });
    expect(module.namedParameters('image').map(([n]) => n)).toEqual([
      'image.encoder.weight',
      'image.encoder.bias',
      'image.projector.weight',
    ]);
    module.dispose();
  });
});

describe.each(TEST_BACKENDS)('toy modality paths on %s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('encodes each item to one feature per cell, with its grid and taps', () => {
    const toy = createToyModality({ featureDim: 3 });
    const items = [toy.prepare(toyRaw(2, 3, 1)), toy.prepare(toyRaw(1, 2, 2))];
    expectNoLeaksSync(() => {
      const out = toy.continuousIn!.encode(items, { taps: [0] });
      const features = out.features as tf.Tensor[];
      expect(features.map((f) => f.shape)).toEqual([[6, 3], [2, 3]]);
      expect(out.tokensPerItem).toEqual(items.map((item) => toy.tokensFor(item)));
      expect(out.grids).toEqual([{ rows: 2, cols: 3 }, { rows: 1, cols: 2 }]);
      // Independent check: feature = cells @ W + b.
      const w = toy.encoder.weight.arraySync() as number[][];
      const b = toy.encoder.bias!.arraySync() as number[];
      const cells = items[1]!.cells;
      const expected = [0, 1].map((c) => [0, 1, 2].map((j) => cells[c * CELL_WIDTH]! * w[0]![j]! + cells[c * CELL_WIDTH + 1]! * w[1]![j]! + b[j]!));
      const got = features[1]!.arraySync() as number[][];
      got.flat().forEach((v, i) => expect(v).toBeCloseTo(expected.flat()[i]!, 5));
      expect(Array.from((out.taps![0] as tf.Tensor[])[0]!.dataSync())).toEqual(Array.from(items[0]!.cells));
      return out;
    });
    toy.module.dispose();
  });

  it('tokenizes into the codebook, looks codes up and detokenizes them', () => {
    const toy = createToyModality({ featureDim: 4, embeddingDim: 5 });
    const items = [toy.prepare(toyRaw(2, 2, 3)), toy.prepare(toyRaw(2, 2, 4))];
    expectNoLeaksSync(() => {
      const ids = toy.discrete!.tokenize(items);
      expect(ids.shape).toEqual([2, 4]);
      expect(ids.dtype).toBe('int32');
      const codes = ids.arraySync() as number[][];
      codes.forEach((row, i) =>
        row.forEach((code, c) => {
          expect(code).toBeGreaterThanOrEqual(0);
          expect(code).toBeLessThan(TOY_CODEBOOK_SIZE);
          const cells = items[i]!.cells;
          expect(code).toBe(quantise((cells[2 * c]! + cells[2 * c + 1]!) / 2));
        }),
      );
      const embedded = toy.discrete!.lookup(ids);
      expect(embedded.shape).toEqual([2, 4, 5]);
      const table = toy.codebook.weight.arraySync() as number[][];
      expect((embedded.arraySync() as number[][][])[1]![2]).toEqual(table[codes[1]![2]!]);
      const raw = toy.discrete!.detokenize(ids);
      expect(raw).toHaveLength(2);
      // Round trip: re-tokenizing the decoded item gives the same codes.
      const again = toy.discrete!.tokenize(raw.map((r) => toy.prepare(r)));
      expect(again.arraySync()).toEqual(codes);
      tf.dispose([ids, embedded, again]);
    });
    toy.module.dispose();
  });

  it('decodes latents of the declared shape', () => {
    const toy = createToyModality();
    const [n, c] = toy.continuousOut!.latentShape;
    const latents = tf.tensor3d(Array.from({ length: 2 * n! * c! }, (_, i) => i / 100), [2, n!, c!]);
    const raw = toy.continuousOut!.decodeLatents(latents);
    expect(raw).toHaveLength(2);
    expect(raw[1]!.values[0]).toBeCloseTo((n! * c!) / 100, 6);
    expect(toy.tokensFor(toy.prepare(raw[0]!), 'continuousOut')).toBe(n);
    latents.dispose();
    toy.module.dispose();
  });
});
