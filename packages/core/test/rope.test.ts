import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { TEST_BACKENDS, setupTestBackend, expectNoLeaksSync } from '../src/testing';
import {
  RotaryEmbedding,
  applyRotary,
  ropeInverseFrequencies,
  ropeScalingFromConfig,
  sequentialPositions,
} from '../src/nn/rope';

/** Plain-JS RoPE angle table: pair j of a 1-D head uses theta^(-2j/D). */
function plainAngles(position: number, headDim: number, theta: number): number[] {
  return Array.from({ length: headDim / 2 }, (_, j) => position * Math.pow(theta, (-2 * j) / headDim));
}

/** Plain-JS rotate-half rotation of one head vector by per-pair angles. */
function plainRotate(x: number[], angles: number[]): number[] {
  const half = x.length / 2;
  const out = new Array<number>(x.length);
  for (let j = 0; j < half; j++) {
    const c = Math.cos(angles[j]!);
    const s = Math.sin(angles[j]!);
    out[j] = x[j]! * c - x[j + half]! * s;
    out[j + half] = x[j + half]! * c + x[j]! * s;
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function randomArray(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return (s / 2147483648) * 2 - 1;
  });
}

/** HF's llama3 formula transcribed directly, on the whole frequency vector (used as an independent check). */
function llama3Reference(headDim: number, theta: number, factor: number, low: number, high: number, context: number): number[] {
  const inv = Array.from({ length: headDim / 2 }, (_, j) => 1 / Math.pow(theta, (2 * j) / headDim));
  const lowWavelen = context / low;
  const highWavelen = context / high;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    const scaled = wavelen > lowWavelen ? f / factor : f;
    const smooth = (context / wavelen - low) / (high - low);
    const smoothed = ((1 - smooth) * scaled) / factor + smooth * scaled;
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    return medium ? smoothed : scaled;
  });
}

describe.each(TEST_BACKENDS)('%s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  it('cos/sin match the plain formula for 1-D positions', () => {
    const headDim = 8;
    const theta = 10000;
    const positions = [
      [0, 1, 2, 7],
      [5, 3, 100, 41],
    ];
    const rope = new RotaryEmbedding({ headDim, theta });
    const { cos, sin } = rope.forward(tf.tensor2d(positions, [2, 4], 'int32'));
    expect(cos.shape).toEqual([2, 4, headDim]);
    const expectedCos: number[] = [];
    const expectedSin: number[] = [];
    for (const row of positions) {
      for (const p of row) {
        const a = plainAngles(p, headDim, theta);
        const full = [...a, ...a];
        expectedCos.push(...full.map(Math.cos));
        expectedSin.push(...full.map(Math.sin));
      }
    }
    expect(maxAbsDiff(cos.dataSync(), expectedCos)).toBeLessThan(1e-4);
    expect(maxAbsDiff(sin.dataSync(), expectedSin)).toBeLessThan(1e-4);
    tf.dispose([cos, sin]);
  });

  it('applyRotary matches the plain rotation, preserves norms and leaves no tensors', () => {
    const [B, H, T, D] = [2, 3, 5, 8];
    const xData = randomArray(B * H * T * D, 3);
    const positions = [
      [0, 1, 2, 3, 4],
      [9, 8, 20, 2, 0],
    ];
    const x = tf.tensor4d(xData, [B, H, T, D]);
    const rope = new RotaryEmbedding({ headDim: D, theta: 500 });
    const pos = tf.tensor2d(positions, [B, T], 'int32');
    const out = expectNoLeaksSync(() => {
      const { cos, sin } = rope.forward(pos);
      const y = applyRotary(x, cos, sin);
      tf.dispose([cos, sin]);
      return y;
    });
    const got = out.dataSync();
    let worst = 0;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < T; t++) {
          const offset = ((b * H + h) * T + t) * D;
          const v = xData.slice(offset, offset + D);
          const expected = plainRotate(v, plainAngles(positions[b]![t]!, D, 500));
          worst = Math.max(worst, maxAbsDiff(got.slice(offset, offset + D), expected));
          const norm = (u: ArrayLike<number>) => Math.hypot(...Array.from(u));
          expect(norm(got.slice(offset, offset + D))).toBeCloseTo(norm(v), 5);
        }
      }
    }
    expect(worst).toBeLessThan(1e-5);
    tf.dispose([x, pos, out]);
  });

  it('q·k after RoPE depends only on the position difference', () => {
    const D = 16;
    const rope = new RotaryEmbedding({ headDim: D });
    const q = tf.tensor4d(randomArray(D, 11), [1, 1, 1, D]);
    const k = tf.tensor4d(randomArray(D, 12), [1, 1, 1, D]);
    const dot = (m: number, n: number): number =>
      tf.tidy(() => {
        const tq = rope.forward(tf.tensor2d([[m]], [1, 1], 'int32'));
        const tk = rope.forward(tf.tensor2d([[n]], [1, 1], 'int32'));
        return tf.sum(tf.mul(applyRotary(q, tq.cos, tq.sin), applyRotary(k, tk.cos, tk.sin))).dataSync()[0]!;
      });
    const base = dot(3, 1);
    expect(dot(10, 8)).toBeCloseTo(base, 4);
    expect(dot(52, 50)).toBeCloseTo(base, 4);
    // A different offset gives a different product (the property is not vacuous).
    expect(Math.abs(dot(10, 5) - base)).toBeGreaterThan(1e-3);
    tf.dispose([q, k]);
  });

  it('M-RoPE with equal t/h/w positions equals 1-D RoPE; different axes differ', () => {
    const D = 16;
    const positions = [[0, 3, 4, 9, 30]];
    const oneD = new RotaryEmbedding({ headDim: D, theta: 1000 });
    const mrope = new RotaryEmbedding({ headDim: D, theta: 1000, sections: [2, 3, 3] });
    const pos2 = tf.tensor2d(positions, [1, 5], 'int32');
    const pos3 = tf.tensor3d([positions, positions, positions], [3, 1, 5], 'int32');
    const a = oneD.forward(pos2);
    const b = mrope.forward(pos3);
    const c = mrope.forward(pos2); // [B, T] positions drive every axis
    expect(maxAbsDiff(a.cos.dataSync(), b.cos.dataSync())).toBeLessThan(1e-6);
    expect(maxAbsDiff(a.sin.dataSync(), b.sin.dataSync())).toBeLessThan(1e-6);
    expect(maxAbsDiff(a.sin.dataSync(), c.sin.dataSync())).toBeLessThan(1e-6);
    // Distinct axes: pair j takes its angle from the axis whose section holds j.
    const t = [1, 2, 3, 4, 5];
    const h = [7, 0, 2, 2, 9];
    const w = [0, 6, 1, 8, 3];
    const d = mrope.forward(tf.tensor3d([[t], [h], [w]], [3, 1, 5], 'int32'));
    const axisOfPair = [0, 0, 1, 1, 1, 2, 2, 2];
    const expected: number[] = [];
    for (let i = 0; i < 5; i++) {
      const angles = axisOfPair.map((axis, j) => [t, h, w][axis]![i]! * Math.pow(1000, (-2 * j) / D));
      expected.push(...[...angles, ...angles].map(Math.cos));
    }
    expect(maxAbsDiff(d.cos.dataSync(), expected)).toBeLessThan(1e-5);
    tf.dispose([pos2, pos3, a.cos, a.sin, b.cos, b.sin, c.cos, c.sin, d.cos, d.sin]);
  });

  it("2-D RoPE with ladder 'per-axis' gives each axis its own full ladder (row pairs, then column pairs)", () => {
    const D = 8;
    const rope = new RotaryEmbedding({ headDim: D, sections: [2, 2], ladder: 'per-axis', theta: 100 });
    const rows = [0, 0, 1, 1];
    const cols = [0, 1, 0, 1];
    const { cos, sin } = rope.forward(tf.tensor3d([[rows], [cols]], [2, 1, 4], 'int32'));
    const expected: number[] = [];
    for (let i = 0; i < 4; i++) {
      // Each axis: ladder over D/2 channels, i.e. 100^(-2m/(D/2)) for m < D/4.
      const angles = [rows[i]! * 1, rows[i]! * Math.pow(100, -0.5), cols[i]! * 1, cols[i]! * Math.pow(100, -0.5)];
      expected.push(...[...angles, ...angles].map(Math.sin));
    }
    expect(maxAbsDiff(sin.dataSync(), expected)).toBeLessThan(1e-5);
    tf.dispose([cos, sin]);
  });

  it('llama3 scaling matches a plain transcription of the HF formula (all three bands)', () => {
    const [D, theta, factor, low, high, context] = [32, 10000, 8, 1, 4, 64];
    const scaling = { type: 'llama3' as const, factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: context };
    const got = ropeInverseFrequencies({ headDim: D, theta, scaling });
    const expected = llama3Reference(D, theta, factor, low, high, context);
    const plain = Array.from({ length: D / 2 }, (_, j) => Math.pow(theta, (-2 * j) / D));
    for (let j = 0; j < D / 2; j++) expect(got[j]! / expected[j]!).toBeCloseTo(1, 5);
    // The case exercises every band: kept, blended and divided by the factor.
    const ratios = expected.map((e, j) => plain[j]! / e);
    expect(ratios.some((r) => Math.abs(r - 1) < 1e-9)).toBe(true);
    expect(ratios.some((r) => Math.abs(r - factor) < 1e-9)).toBe(true);
    expect(ratios.some((r) => r > 1.01 && r < factor - 0.01)).toBe(true);
    // And the tables use those frequencies.
    const rope = new RotaryEmbedding({ headDim: D, theta, scaling });
    const { cos, sin } = rope.forward(tf.tensor2d([[100]], [1, 1], 'int32'));
    const angles = expected.map((f) => 100 * f);
    expect(maxAbsDiff(sin.dataSync(), [...angles, ...angles].map(Math.sin))).toBeLessThan(1e-4);
    tf.dispose([cos, sin]);
  });

  it('linear scaling divides positions by the factor; HF configs parse', () => {
    const a = ropeInverseFrequencies({ headDim: 8, scaling: { type: 'linear', factor: 4 } });
    const b = ropeInverseFrequencies({ headDim: 8 });
    for (let j = 0; j < 4; j++) expect(a[j]! * 4).toBeCloseTo(b[j]!, 7);
    expect(ropeScalingFromConfig({ rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 })).toEqual({
      type: 'llama3',
      factor: 32,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    });
    expect(ropeScalingFromConfig({ type: 'default' })).toBeUndefined();
    expect(() => ropeScalingFromConfig({ rope_type: 'yarn', factor: 2 })).toThrow(/not supported/);
  });

  it('partial rotary leaves the trailing channels untouched', () => {
    const x = tf.tensor4d(randomArray(12, 5), [1, 1, 1, 12]);
    const rope = new RotaryEmbedding({ headDim: 8 });
    const { cos, sin } = rope.forward(tf.tensor2d([[3]], [1, 1], 'int32'));
    const y = applyRotary(x, cos, sin);
    const xs = Array.from(x.dataSync());
    const ys = y.dataSync();
    expect(maxAbsDiff(ys.slice(8), xs.slice(8))).toBe(0);
    expect(maxAbsDiff(ys.slice(0, 8), plainRotate(xs.slice(0, 8), plainAngles(3, 8, 10000)))).toBeLessThan(1e-5);
    tf.dispose([x, cos, sin, y]);
  });

  it('sequentialPositions and clear errors', () => {
    const p = sequentialPositions(2, 3, 5);
    expect(p.dtype).toBe('int32');
    expect(p.arraySync()).toEqual([
      [5, 6, 7],
      [5, 6, 7],
    ]);
    p.dispose();
    expect(() => new RotaryEmbedding({ headDim: 7 })).toThrow(/even/);
    expect(() => new RotaryEmbedding({ headDim: 16, sections: [2, 2, 2] })).toThrow(/summing to headDim\/2 = 8/);
    const rope = new RotaryEmbedding({ headDim: 16, sections: [4, 4] });
    const pos = tf.zeros([3, 1, 2], 'int32');
    expect(() => rope.forward(pos)).toThrow(/3 axes but sections/);
    pos.dispose();
  });
});
