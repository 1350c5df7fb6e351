import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_BACKENDS, setupTestBackend, torchAvailable, runTorchScript } from '../src/testing';
import { Attention, type QKNormKind } from '../src/nn/attention';
import { RotaryEmbedding, type RopeScaling } from '../src/nn/rope';
import { RMSNorm } from '../src/nn/norm';

interface Stored {
  shape: number[];
  data: number[];
}

interface ReferenceCase {
  name: string;
  config: {
    dim: number;
    numHeads: number;
    numKvHeads: number;
    headDim: number;
    causal?: boolean;
    qkNorm?: QKNormKind;
    qkNormEps?: number;
    qkvBias?: boolean;
  };
  rope: { theta: number; scaling?: RopeScaling; sections?: number[] } | null;
  weights: Record<string, Stored>;
  x: Stored;
  positions: Stored;
  bias?: Stored;
  output: Stored;
}

interface Reference {
  torch: string;
  cases: ReferenceCase[];
  rmsnorm: { eps: number; x: Stored; weight: Stored; output: Stored };
}

const hasTorch = torchAvailable();
const script = fileURLToPath(new URL('./reference/attention_reference.py', import.meta.url));
const TOLERANCE = 1e-4;

const toTensor = (s: Stored, dtype: 'float32' | 'int32' = 'float32') => tf.tensor(s.data, s.shape, dtype);

function maxAbsDiff(got: tf.Tensor, expected: Stored): number {
  expect(got.shape).toEqual(expected.shape);
  const values = got.dataSync();
  return expected.data.reduce((m, e, i) => Math.max(m, Math.abs(values[i]! - e)), 0);
}

/** PyTorch layout to Chimera's: Linear weights [out, in] -> [in, out]; everything else as is. */
function chimeraStateDict(weights: Record<string, Stored>): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [name, stored] of Object.entries(weights)) {
    const t = toTensor(stored);
    out[name] = /_proj\.weight$/.test(name) ? tf.transpose(t) : t;
    if (out[name] !== t) t.dispose();
  }
  return out;
}

describe.skipIf(!hasTorch)('attention parity with a PyTorch reference', () => {
  let reference: Reference;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'chimera-attention-'));
    const path = runTorchScript(script, [dir]).trim();
    reference = JSON.parse(readFileSync(path, 'utf8')) as Reference;
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the reference covers every feature it should', () => {
    const names = reference.cases.map((c) => c.name).join(' | ');
    for (const feature of ['GQA', 'llama3', 'M-RoPE', 'padding bias', 'QK-norm rms', 'qkv bias', 'QK-norm layer']) {
      expect(names).toContain(feature);
    }
  });

  describe.each(TEST_BACKENDS)('%s', (backend) => {
    beforeAll(() => setupTestBackend(backend));

    it('every attention case matches torch within 1e-4 (max abs)', () => {
      for (const c of reference.cases) {
        const cfg = c.config;
        const attn = new Attention({
          dim: cfg.dim,
          numHeads: cfg.numHeads,
          numKvHeads: cfg.numKvHeads,
          headDim: cfg.headDim,
          causal: cfg.causal,
          qkNorm: cfg.qkNorm,
          qkNormEps: cfg.qkNormEps,
          qkvBias: cfg.qkvBias,
        });
        const state = chimeraStateDict(c.weights);
        attn.loadStateDict(state); // strict: the HF names must match exactly
        tf.dispose(Object.values(state));
        const error = tf.tidy(() => {
          const rotary = c.rope
            ? new RotaryEmbedding({ headDim: cfg.headDim, theta: c.rope.theta, scaling: c.rope.scaling, sections: c.rope.sections }).forward(
                toTensor(c.positions, 'int32'),
              )
            : undefined;
          const out = attn.forward(toTensor(c.x), { rotary, bias: c.bias ? toTensor(c.bias) : undefined });
          return maxAbsDiff(out, c.output);
        });
        expect(error, `${c.name} on ${backend}`).toBeLessThan(TOLERANCE);
        attn.dispose();
      }
    });

    it('RMSNorm matches torch within 1e-4', () => {
      const { eps, x, weight, output } = reference.rmsnorm;
      const norm = new RMSNorm(weight.shape[0]!, { eps });
      const w = toTensor(weight);
      norm.loadStateDict({ weight: w });
      w.dispose();
      const error = tf.tidy(() => maxAbsDiff(norm.forward(toTensor(x)), output));
      expect(error).toBeLessThan(TOLERANCE);
      norm.dispose();
    });
  });
});
