// The built package must load from plain Node in both module systems and compose a model from the other
// packages' builds (one @chimera/core, one tfjs engine). Run after `build`; turbo orders it.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const built = existsSync(`${packageDir}/dist/index.cjs`) && existsSync(`${packageDir}/dist/index.js`);

function lastJsonLine(args: string[]): unknown {
  const out = execFileSync(process.execPath, args, { cwd: packageDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

const api = ['compose', 'ComposedModel', 'earlyFusion', 'gatedCrossAttention', 'nvlmHybrid', 'TRAINABLE_PRESETS', 'PerceiverResampler', 'QFormerResampler'];
// Compose a tiny LLaVA-style model with a toy plugin and read its summary: proves the builds share core's Module.
const report = `
  const { Linear, ModalityModule, initBackend, tf } = core;
  initBackend({ backend: 'cpu' }).then(() => {
    const encoder = new Linear(2, 4);
    const toy = { name: 'toy', module: new ModalityModule({ encoder }), prepare: (x) => x, tokensFor: () => 2,
      continuousIn: { featureDim: 4, encode: (items) => ({ features: items.map(() => encoder.forward(tf.ones([2, 2]))), tokensPerItem: items.map(() => 2) }) } };
    const model = fusion.compose({ backbone: new llm.CausalLM(llm.tinyLlama()), modalities: { toy }, fusion: { toy: fusion.earlyFusion() } });
    const groups = model.trainOnly('projector').groups.map((g) => g.name + ':' + g.trainable);
    const logits = model.forward([[{ text: [1] }, { modality: 'toy', item: {} }]]).logits.shape;
    console.log(JSON.stringify({ api: ${JSON.stringify(api)}.filter((k) => k in fusion), groups, logits, isModule: model instanceof core.Module }));
  });
`;
const expected = { api, groups: ['llm:no', 'toy.encoder:no', 'toy.projector:yes'], logits: [1, 3, 64], isModule: true };

describe('built package', () => {
  it('exists (turbo builds before testing; run `npm run build` by hand otherwise)', () => {
    expect(built).toBe(true);
  });

  it('loads with require() and composes a model', () => {
    const script = `const core = require('@chimera/core'); const llm = require('@chimera/llm'); const fusion = require('@chimera/fusion'); ${report}`;
    expect(lastJsonLine(['-e', script])).toEqual(expected);
  });

  it('loads with import() and composes a model', () => {
    const script = `const core = await import('@chimera/core'); const llm = await import('@chimera/llm'); const fusion = await import('@chimera/fusion'); ${report}`;
    expect(lastJsonLine(['--input-type=module', '-e', script])).toEqual(expected);
  });
});
