import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSafetensors, SafetensorsError, saveSafetensors, type WritableDtype } from '../src/weights/index';
import { findTorchPython, runTorchScript, setupTestBackend, TEST_BACKENDS } from '../src/testing/index';

const SCRIPT = fileURLToPath(new URL('./reference/safetensors_reference.py', import.meta.url));
const torchPython = findTorchPython();

// JSON has no NaN, infinities or -0 (JSON.stringify(-0) is "0"): they travel as strings.
type JsonNumber = number | 'NaN' | 'Infinity' | '-Infinity' | '-0';
const fromJson = (v: JsonNumber): number => (typeof v === 'string' ? Number(v) : v);
const toJson = (v: number): JsonNumber =>
  Number.isNaN(v) ? 'NaN' : v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : Object.is(v, -0) ? '-0' : v;

interface ExpectedFile {
  tensors: Record<string, { dtype: string; shape: number[]; values: JsonNumber[] }>;
  metadata: Record<string, string>;
}

/** What each file dtype becomes in TensorFlow.js (the documented conversion). */
const TF_DTYPE: Record<string, string> = {
  F32: 'float32', F16: 'float32', BF16: 'float32', F64: 'float32',
  I64: 'int32', I32: 'int32', I16: 'int32', I8: 'int32', U8: 'int32', BOOL: 'bool',
};

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(nodePath.join(os.tmpdir(), 'chimera-weights-ref-'));
  if (torchPython) runTorchScript(SCRIPT, ['write', tmp]);
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe.each(TEST_BACKENDS)('safetensors vs PyTorch on %s', (backend) => {
  beforeAll(async () => {
    await setupTestBackend(backend);
  });

  it.skipIf(!torchPython)('reads a file torch wrote, every dtype, exactly', async () => {
    const expected = JSON.parse(await fs.readFile(nodePath.join(tmp, 'expected.json'), 'utf8')) as ExpectedFile;
    const { tensors, metadata } = await loadSafetensors(nodePath.join(tmp, 'torch.safetensors'));
    expect(metadata).toEqual(expected.metadata);
    expect(Object.keys(tensors).sort()).toEqual(Object.keys(expected.tensors).sort());
    for (const [name, want] of Object.entries(expected.tensors)) {
      const got = tensors[name]!;
      expect([name, got.dtype, got.shape]).toEqual([name, TF_DTYPE[want.dtype], want.shape]);
      // float64 of the stored values -> float32 (exact for F32/F16/BF16, rounded for F64); integers as is.
      const isFloat = TF_DTYPE[want.dtype] === 'float32';
      const wantValues = want.values.map((v) => (isFloat ? Math.fround(fromJson(v)) : fromJson(v)));
      // toEqual distinguishes -0 from 0 and matches NaN with NaN.
      expect([name, Array.from(got.dataSync() as ArrayLike<number>)]).toEqual([name, wantValues]);
    }
    for (const t of Object.values(tensors)) t.dispose();
  });

  it.skipIf(!torchPython)('names the tensor when torch stored an int64 beyond int32', async () => {
    const error = await loadSafetensors(nodePath.join(tmp, 'big_i64.safetensors')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as Error).message).toMatch(/tensor 'ids': I64 element 1 is 1099511627776/);
  });

  it.skipIf(!torchPython)('writes files torch reads back bit-exactly (F32, F16, BF16, I32, I64, BOOL)', async () => {
    // float32-exact originals, so torch's float64 -> half conversion cannot double-round differently.
    const floats = [0, -0, 1, -2.5, 65504, 65519, 65520, 1e5, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 1 / 3, -1e-6, 0.1,
      Infinity, -Infinity, NaN, 2049, 2051, 1.00390625, 1.01171875, 3e38, 3.4e38, 1e-40, -7.5e-3].map(Math.fround);
    let seed = 5;
    const random = Array.from({ length: 60 }, () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return Math.fround(((seed / 2 ** 32) - 0.5) * 2 ** ((seed % 40) - 20));
    });
    const specs: [string, WritableDtype, tf.Tensor, number[]][] = [
      ['f32', 'F32', tf.tensor1d(floats), floats],
      ['f16', 'F16', tf.tensor1d(floats), floats],
      ['bf16', 'BF16', tf.tensor1d(floats), floats],
      ['f16.random', 'F16', tf.tensor2d(random, [6, 10]), random],
      ['bf16.random', 'BF16', tf.tensor3d(random, [3, 4, 5]), random],
      ['i32', 'I32', tf.tensor2d([0, -5, 2147483647, -2147483648], [2, 2], 'int32'), [0, -5, 2147483647, -2147483648]],
      ['i64', 'I64', tf.tensor1d([7, -1, -2147483648], 'int32'), [7, -1, -2147483648]],
      ['bool', 'BOOL', tf.tensor1d([true, false, true], 'bool'), [1, 0, 1]],
      ['scalar', 'F32', tf.scalar(0.5), [0.5]],
      ['empty', 'F16', tf.zeros([0, 4]), []],
      ['ünï.名前', 'F32', tf.tensor1d([3]), [3]],
    ];
    const tensors = Object.fromEntries(specs.map(([name, , t]) => [name, t]));
    const dtypes = Object.fromEntries(specs.map(([name, dtype]) => [name, dtype]));
    const metadata = { format: 'pt', 'clé': 'välue' };
    const path = nodePath.join(tmp, `ours-${backend}.safetensors`);
    await saveSafetensors(path, tensors, metadata, { dtypes });
    const spec = {
      metadata,
      tensors: Object.fromEntries(
        specs.map(([name, dtype, t, vals]) => [name, { dtype, shape: t.shape, values: vals.map(toJson) }]),
      ),
    };
    const specPath = nodePath.join(tmp, `spec-${backend}.json`);
    await fs.writeFile(specPath, JSON.stringify(spec));
    const report = JSON.parse(runTorchScript(SCRIPT, ['verify', path, specPath])) as { ok: boolean; checked: string[] };
    expect(report.ok).toBe(true);
    expect(report.checked).toEqual(specs.map(([name]) => name).sort());
    for (const t of Object.values(tensors)) t.dispose();
  });
});
