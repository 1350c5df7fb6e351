import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { constants as bufferConstants } from 'node:buffer';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import {
  bf16BitsToNumber,
  decodeSafetensors,
  encodeSafetensors,
  f16BitsToNumber,
  loadSafetensors,
  numberToBf16Bits,
  numberToF16Bits,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  SafetensorsError,
  saveSafetensors,
  withAtomicFile,
  writeFileAtomic,
} from '../src/weights/index';
import { f8e4m3BitsToNumber, f8e5m2BitsToNumber } from '../src/weights/dtypes';
import { expectNoLeaks, setupTestBackend, TEST_BACKENDS } from '../src/testing/index';
import {
  assemble,
  buildSafetensors,
  concat,
  f32Bytes,
  nearestBf16Bits,
  nearestF16Bits,
  referenceBf16,
  referenceDecode,
  referenceF16,
} from './weights-helpers';

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(nodePath.join(os.tmpdir(), 'chimera-weights-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Deterministic float32 values spanning every exponent, both signs and the special values. */
function sampleFloat32(count: number, seed = 7): number[] {
  let state = seed;
  const bits = new Uint32Array(1);
  const floats = new Float32Array(bits.buffer);
  const out: number[] = [0, -0, Infinity, -Infinity, NaN, 65504, 65520, 65519.99, 2 ** -24, 2 ** -25, 2 ** -149];
  while (out.length < count) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    bits[0] = state;
    out.push(floats[0]!);
  }
  return out;
}

describe('half-float conversions', () => {
  it('decodes binary16 constants', () => {
    expect(f16BitsToNumber(0x3c00)).toBe(1);
    expect(f16BitsToNumber(0xc000)).toBe(-2);
    expect(f16BitsToNumber(0x7bff)).toBe(65504);
    expect(f16BitsToNumber(0x0001)).toBe(2 ** -24);
    expect(f16BitsToNumber(0x03ff)).toBe(1023 * 2 ** -24);
    expect(f16BitsToNumber(0x0400)).toBe(2 ** -14);
    expect(f16BitsToNumber(0x7c00)).toBe(Infinity);
    expect(f16BitsToNumber(0xfc00)).toBe(-Infinity);
    expect(f16BitsToNumber(0x7e00)).toBeNaN();
    expect(Object.is(f16BitsToNumber(0x8000), -0)).toBe(true);
  });

  it('decodes all 65536 binary16 patterns as the bit-level reference does', () => {
    for (let bits = 0; bits < 65536; bits++) expect(Object.is(f16BitsToNumber(bits), referenceF16(bits)) || bits).toBe(true);
  });

  it('encodes every binary16 value back to its own bits, and midpoints to the even neighbour', () => {
    for (let bits = 0; bits < 0x7c00; bits++) {
      for (const sign of [0, 0x8000]) {
        expect(numberToF16Bits(referenceF16(sign | bits))).toBe(sign | bits);
      }
      if (bits + 1 === 0x7c00) continue; // the next pattern is infinity (checked below)
      // The midpoint of two neighbours needs 12 significant bits, so it is exact in float32.
      const mid = (referenceF16(bits) + referenceF16(bits + 1)) / 2;
      expect(numberToF16Bits(mid)).toBe(bits % 2 === 0 ? bits : bits + 1);
      expect(numberToF16Bits(Math.fround(mid * (1 + 2 ** -20)))).toBe(bits + 1);
      if (mid * (1 - 2 ** -20) > referenceF16(bits)) expect(numberToF16Bits(Math.fround(mid * (1 - 2 ** -20)))).toBe(bits);
    }
  });

  it('rounds float32 to binary16 like a brute-force nearest-even search', () => {
    for (const x of sampleFloat32(20_000)) {
      if (Number.isNaN(x)) expect(numberToF16Bits(x) & 0x7fff).toBeGreaterThan(0x7c00);
      else expect([x, numberToF16Bits(x)]).toEqual([x, nearestF16Bits(x)]);
    }
    expect(numberToF16Bits(65519.99)).toBe(0x7bff);
    expect(numberToF16Bits(65520)).toBe(0x7c00);
    expect(numberToF16Bits(2 ** -25)).toBe(0); // tie between 0 and 2^-24: even is 0
    expect(numberToF16Bits(Math.fround(2 ** -25 * 1.5))).toBe(1);
    expect(numberToF16Bits(NaN) & 0x7e00).toBe(0x7e00);
  });

  it('round-trips every bfloat16 pattern and rounds float32 like a nearest-even search', () => {
    for (let bits = 0; bits < 65536; bits++) {
      const v = referenceBf16(bits);
      expect(Object.is(bf16BitsToNumber(bits), v)).toBe(true);
      if (!Number.isNaN(v)) expect(numberToBf16Bits(v)).toBe(bits);
    }
    for (const x of sampleFloat32(20_000, 11)) {
      if (Number.isNaN(x)) expect(numberToBf16Bits(x) & 0x7fff).toBeGreaterThan(0x7f80);
      else expect([x, numberToBf16Bits(x)]).toEqual([x, nearestBf16Bits(x)]);
    }
    expect(numberToBf16Bits(NaN)).toBe(0x7fc0);
    expect(numberToBf16Bits(Math.fround(1 + 2 ** -8))).toBe(0x3f80); // tie, even is 1.0
    expect(numberToBf16Bits(Math.fround(1 + 3 * 2 ** -8))).toBe(0x3f82); // tie, even is up
  });

  it('decodes float8 constants', () => {
    expect(f8e4m3BitsToNumber(0x7e)).toBe(448);
    expect(f8e4m3BitsToNumber(0x7f)).toBeNaN();
    expect(f8e4m3BitsToNumber(0x01)).toBe(2 ** -9);
    expect(f8e4m3BitsToNumber(0xb8)).toBe(-1);
    expect(f8e5m2BitsToNumber(0x7b)).toBe(57344);
    expect(f8e5m2BitsToNumber(0x7c)).toBe(Infinity);
    expect(f8e5m2BitsToNumber(0x3c)).toBe(1);
  });
});

function values(t: tf.Tensor): number[] {
  return Array.from(t.dataSync() as ArrayLike<number>);
}

function dispose(record: Record<string, tf.Tensor>): void {
  for (const t of Object.values(record)) t.dispose();
}

describe.each(TEST_BACKENDS)('safetensors on %s', (backend) => {
  beforeAll(async () => {
    await setupTestBackend(backend);
  });

  it('round-trips F32, I32, BOOL, scalars, empty tensors, metadata and unicode names through a file', async () => {
    const specials = [0, -0, 1.5, -3.25, Infinity, -Infinity, NaN, 2 ** -149, 3.4028234663852886e38];
    const tensors: Record<string, tf.Tensor> = {
      'model.layers.0.weight': tf.tensor2d([[1, 2, 3], [4, 5, 6]]),
      specials: tf.tensor1d(specials),
      ids: tf.tensor1d([0, -1, 2147483647, -2147483648], 'int32'),
      mask: tf.tensor2d([[true, false], [false, true]], [2, 2], 'bool'),
      scalar: tf.scalar(-7.5),
      'empty.f': tf.zeros([0]),
      'empty.3d': tf.zeros([2, 0, 3], 'int32'),
      'ünï cödé/名前 🙂': tf.tensor1d([42]),
      'a.b.c': tf.ones([1, 1, 1, 1, 1]),
    };
    Object.defineProperty(tensors, '__proto__', { value: tf.tensor1d([9]), enumerable: true });
    const metadata = { format: 'pt', 'note ✓': 'välue', empty: '' };
    const path = nodePath.join(tmp, `roundtrip-${backend}.safetensors`);
    await expectNoLeaks(async () => {
      await saveSafetensors(path, tensors, metadata);
    }, 'saveSafetensors');
    const loaded = await loadSafetensors(path);
    expect(loaded.metadata).toEqual(metadata);
    expect(Object.keys(loaded.tensors).sort()).toEqual(Object.keys(tensors).sort());
    expect(Object.getPrototypeOf(loaded.tensors)).toBe(Object.prototype);
    for (const [name, original] of Object.entries(tensors)) {
      const got = loaded.tensors[name]!;
      expect([name, got.dtype, got.shape]).toEqual([name, original.dtype, original.shape]);
      expect(values(got)).toEqual(values(original));
    }
    expect(values(loaded.tensors.specials!).map((v) => Object.is(v, -0))).toEqual(specials.map((v) => Object.is(v, -0)));
    dispose(loaded.tensors);
    dispose(tensors);
  });

  it('writes F16/BF16 (nearest even) and I64, and reads them back', async () => {
    const floats = sampleFloat32(500, 3);
    const source = { w: tf.tensor2d(floats, [25, 20]), b: tf.tensor1d(floats.slice(0, 7)), ids: tf.tensor1d([5, -6, 2147483647], 'int32') };
    for (const dtype of ['F16', 'BF16'] as const) {
      const bytes = encodeSafetensors(source, undefined, { floatDtype: dtype, intDtype: 'I64', dtypes: { b: 'F32' } });
      const header = parseSafetensorsHeader(bytes);
      expect(Object.fromEntries(header.entries.map((e) => [e.name, e.dtype]))).toEqual({ w: dtype, b: 'F32', ids: 'I64' });
      const { tensors } = decodeSafetensors(bytes);
      const nearest = dtype === 'F16' ? (x: number) => referenceF16(nearestF16Bits(x)) : (x: number) => referenceBf16(nearestBf16Bits(x));
      expect(values(tensors.w!)).toEqual(floats.map(nearest));
      expect(values(tensors.b!)).toEqual(floats.slice(0, 7).map(Math.fround));
      expect(tensors.ids!.dtype).toBe('int32');
      expect(values(tensors.ids!)).toEqual([5, -6, 2147483647]);
      dispose(tensors);
    }
    dispose(source);
  });

  it('reads every file dtype with the documented conversion', () => {
    const i64 = new DataView(new ArrayBuffer(24));
    [-5n, 2147483647n, -2147483648n].forEach((v, i) => i64.setBigInt64(i * 8, v, true));
    const entries = [
      { name: 'u8', dtype: 'U8', shape: [3], bytes: new Uint8Array([0, 128, 255]) },
      { name: 'i8', dtype: 'I8', shape: [3], bytes: new Uint8Array([0x80, 0xff, 0x7f]) },
      { name: 'bool', dtype: 'BOOL', shape: [3], bytes: new Uint8Array([0, 1, 7]) },
      { name: 'i16', dtype: 'I16', shape: [2], bytes: new Uint8Array([0x00, 0x80, 0xff, 0x7f]) },
      { name: 'u16', dtype: 'U16', shape: [2], bytes: new Uint8Array([0xff, 0xff, 0x01, 0x00]) },
      { name: 'u32', dtype: 'U32', shape: [1], bytes: new Uint8Array([0xff, 0xff, 0xff, 0x7f]) },
      { name: 'i64', dtype: 'I64', shape: [3], bytes: new Uint8Array(i64.buffer) },
      { name: 'u64', dtype: 'U64', shape: [1], bytes: new Uint8Array([7, 0, 0, 0, 0, 0, 0, 0]) },
      { name: 'f64', dtype: 'F64', shape: [2], bytes: new Uint8Array(new Float64Array([1 / 3, -1e300]).buffer) },
      { name: 'f16', dtype: 'F16', shape: [3], bytes: new Uint8Array([0x00, 0x3c, 0x01, 0x00, 0x00, 0xfc]) },
      { name: 'bf16', dtype: 'BF16', shape: [2], bytes: new Uint8Array([0x80, 0x3f, 0xc0, 0x7f]) },
      { name: 'e4m3', dtype: 'F8_E4M3', shape: [2], bytes: new Uint8Array([0x7e, 0x38]) },
      { name: 'e5m2', dtype: 'F8_E5M2', shape: [2], bytes: new Uint8Array([0x3c, 0xfc]) },
      { name: 'odd', dtype: 'F32', shape: [1, 1], bytes: f32Bytes([0.1]) }, // starts at an odd offset
    ];
    const { tensors } = decodeSafetensors(buildSafetensors(entries));
    const expected: Record<string, [string, number[]]> = {
      u8: ['int32', [0, 128, 255]],
      i8: ['int32', [-128, -1, 127]],
      bool: ['bool', [0, 1, 1]],
      i16: ['int32', [-32768, 32767]],
      u16: ['int32', [65535, 1]],
      u32: ['int32', [2147483647]],
      i64: ['int32', [-5, 2147483647, -2147483648]],
      u64: ['int32', [7]],
      f64: ['float32', [Math.fround(1 / 3), -Infinity]],
      f16: ['float32', [1, 2 ** -24, -Infinity]],
      bf16: ['float32', [1, NaN]],
      e4m3: ['float32', [448, 1]],
      e5m2: ['float32', [1, -Infinity]],
      odd: ['float32', [Math.fround(0.1)]],
    };
    for (const [name, [dtype, vals]] of Object.entries(expected)) {
      expect([name, tensors[name]!.dtype, values(tensors[name]!)]).toEqual([name, dtype, vals]);
    }
    // The reference decoder agrees on every entry.
    for (const e of entries) expect(values(tensors[e.name]!)).toEqual(referenceDecode(e.dtype, e.bytes));
    dispose(tensors);
  });

  it('names the tensor when a 64-bit integer does not fit int32, and leaks nothing', async () => {
    const big = new DataView(new ArrayBuffer(16));
    big.setBigInt64(0, 1n, true);
    big.setBigInt64(8, 1n << 40n, true);
    const bytes = buildSafetensors([
      { name: 'fine', dtype: 'F32', shape: [1], bytes: f32Bytes([1]) },
      { name: 'position_ids', dtype: 'I64', shape: [2], bytes: new Uint8Array(big.buffer) },
    ]);
    await expectNoLeaks(() => {
      expect(() => decodeSafetensors(bytes)).toThrow(/tensor 'position_ids': I64 element 1 is 1099511627776, outside int32/);
    });
    const path = nodePath.join(tmp, 'big.safetensors');
    await fs.writeFile(path, bytes);
    await expect(loadSafetensors(path)).rejects.toThrow(SafetensorsError);
    // Only the other tensor: fine.
    const { tensors } = await loadSafetensors(path, { names: ['fine'] });
    expect(Object.keys(tensors)).toEqual(['fine']);
    dispose(tensors);
  });

  it('reads only the requested names and the header alone', async () => {
    const source = { a: tf.tensor1d([1, 2]), b: tf.tensor1d([3], 'int32'), c: tf.zeros([4, 4]) };
    const path = nodePath.join(tmp, `partial-${backend}.safetensors`);
    await saveSafetensors(path, source, { k: 'v' });
    const header = await readSafetensorsHeader(path);
    expect(header.entries.map((e) => [e.name, e.dtype, e.shape])).toEqual(
      expect.arrayContaining([['a', 'F32', [2]], ['b', 'I32', [1]], ['c', 'F32', [4, 4]]]),
    );
    expect(header.metadata).toEqual({ k: 'v' });
    const { tensors } = await loadSafetensors(path, { names: ['b', 'a'] });
    expect(Object.keys(tensors).sort()).toEqual(['a', 'b']);
    expect(values(tensors.a!)).toEqual([1, 2]);
    dispose(tensors);
    await expect(loadSafetensors(path, { names: ['a', 'nope'] })).rejects.toThrow(/no tensor named 'nope'; the file holds 3 tensors/);
    dispose(source);
  });

  it('refuses tensors safetensors cannot store before writing anything', async () => {
    const path = nodePath.join(tmp, 'refuse.safetensors');
    const good = tf.tensor1d([1]);
    const text = tf.tensor1d(['text'], 'string');
    expect(() => encodeSafetensors({ good, text })).toThrow(/tensor 'text' has dtype string/);
    expect(() => encodeSafetensors({ good }, undefined, { dtypes: { good: 'I32' } })).toThrow(/cannot be written as I32/);
    expect(() => encodeSafetensors({ good }, { n: 3 as unknown as string })).toThrow(/metadata\["n"\] must be a string/);
    await expect(saveSafetensors(path, { good, text })).rejects.toThrow(SafetensorsError);
    await expect(fs.stat(path)).rejects.toThrow();
    good.dispose();
    text.dispose();
  });
});

describe('header validation', () => {
  beforeAll(async () => {
    await setupTestBackend('cpu');
  });

  const entry = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
  const fromHeader = (header: unknown, dataLength: number, lengthField?: bigint) =>
    assemble(new TextEncoder().encode(JSON.stringify(header)), new Uint8Array(dataLength), lengthField);

  /** A valid one-tensor file whose entry carries an extra key nested `levels` deep (entry depth 2 + levels). */
  const nested = (levels: number) => {
    const text = JSON.stringify({ w: { ...entry('F32', [1], [0, 4]), extra: 0 } });
    return assemble(new TextEncoder().encode(text.replace('"extra":0', `"extra":${'['.repeat(levels)}"]}"${']'.repeat(levels)}`)), f32Bytes([3]));
  };

  const cases: [string, Uint8Array, RegExp][] = [
    ['empty file', new Uint8Array(0), /0 bytes, too short/],
    ['7 bytes', new Uint8Array(7), /7 bytes, too short/],
    ['length beyond file', fromHeader({}, 0, 1000n), /says 1000 bytes but only 2 follow/],
    ['absurd length', fromHeader({}, 0, 1n << 40n), /above the 100000000-byte limit/],
    ['length 0', fromHeader({}, 0, 0n), /header length is 0 bytes/],
    ['not UTF-8', assemble(new Uint8Array([0x7b, 0xff, 0x7d]), new Uint8Array(0)), /not valid UTF-8/],
    ['not JSON', assemble(new TextEncoder().encode('{"a":'), new Uint8Array(0)), /not valid JSON/],
    ['JSON array', fromHeader([1], 0), /must be a JSON object starting with '\{'/],
    ['entry not object', fromHeader({ w: 5 }, 0), /tensor 'w': entry must be an object/],
    ['unknown dtype', fromHeader({ w: entry('F128', [1], [0, 16]) }, 16), /tensor 'w': unknown dtype "F128"/],
    ['negative dim', fromHeader({ w: entry('F32', [-1], [0, 4]) }, 4), /tensor 'w': shape must be an array of non-negative integers/],
    ['fractional dim', fromHeader({ w: entry('F32', [1.5], [0, 4]) }, 4), /shape must be/],
    ['string dim', fromHeader({ w: entry('F32', ['2'], [0, 8]) }, 8), /shape must be/],
    ['offsets wrong arity', fromHeader({ w: entry('F32', [1], [0, 4, 8]) }, 4), /data_offsets must be \[begin, end\]/],
    ['begin > end', fromHeader({ w: entry('F32', [1], [8, 4]) }, 8), /begin 8 > end 4/],
    ['past the end', fromHeader({ w: entry('F32', [2], [0, 8]) }, 4), /run past the data section \(4 bytes\)/],
    ['shape vs bytes', fromHeader({ w: entry('F32', [3], [0, 8]) }, 8), /shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] hold 8/],
    ['huge shape', fromHeader({ w: entry('F32', [1e15, 1e15], [0, 8]) }, 8), /needs more than 8 bytes/],
    [
      'overlap',
      fromHeader({ a: entry('F32', [2], [0, 8]), b: entry('F32', [1], [4, 8]) }, 8),
      /tensor 'b' \[4, 8\] overlaps tensor 'a' \[0, 8\]|tensor 'a' \[0, 8\] overlaps/,
    ],
    ['gap', fromHeader({ a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [8, 12]) }, 12), /4 unexplained bytes after tensor 'a'/],
    ['leading gap', fromHeader({ a: entry('F32', [1], [4, 8]) }, 8), /4 unexplained bytes at the start/],
    ['trailing bytes', fromHeader({ a: entry('F32', [1], [0, 4]) }, 6), /cover 4 data bytes but the data section is 6/],
    ['metadata not object', fromHeader({ __metadata__: 'x' }, 0), /__metadata__ must be an object/],
    ['metadata value', fromHeader({ __metadata__: { n: 1 } }, 0), /__metadata__\["n"\] must be a string, got 1/],
    ['nested 5000 deep', nested(4998), /the header is nested more than 128 levels deep/],
  ];

  it.each(cases)('%s', (_label, bytes, message) => {
    let error: unknown;
    try {
      decodeSafetensors(bytes);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as Error).message).toMatch(message);
  });

  it('gives the same errors through files, naming the file', async () => {
    const path = nodePath.join(tmp, 'corrupt.safetensors');
    for (const [, bytes, message] of cases) {
      await fs.writeFile(path, bytes);
      await expect(loadSafetensors(path)).rejects.toThrow(message);
      await expect(loadSafetensors(path)).rejects.toThrow(path);
    }
    await expect(loadSafetensors(nodePath.join(tmp, 'missing.safetensors'))).rejects.toThrow(/no such safetensors file/);
  });

  it('bounds the nesting at 128 levels before parsing, so no later walk of the header overflows the stack', () => {
    // 128 levels (header, entry, 126 arrays) read; 129 are refused by name rather than with a bare RangeError.
    const { tensors } = decodeSafetensors(nested(126));
    expect(values(tensors.w!)).toEqual([3]);
    dispose(tensors);
    expect(() => decodeSafetensors(nested(127), { source: 'deep.safetensors' })).toThrow(
      /^deep\.safetensors: the header is nested more than 128 levels deep \(at byte \d+\)/,
    );
  });

  it('accepts HF-style space padding and zero-size tensors sharing an offset', () => {
    const header = new TextEncoder().encode(
      JSON.stringify({ e1: entry('F32', [0], [0, 0]), a: entry('F32', [1], [0, 4]), e2: entry('I64', [0, 5], [4, 4]) }) + '    ',
    );
    const { tensors } = decodeSafetensors(assemble(header, f32Bytes([2.5])));
    expect(tensors.a!.dataSync()[0]).toBe(2.5);
    expect(tensors.e2!.shape).toEqual([0, 5]);
    dispose(tensors);
  });
});

describe('integers that do not fit int32', () => {
  beforeAll(async () => {
    await setupTestBackend('cpu');
  });

  const word = (dtype: 'I64' | 'U64' | 'U32', value: bigint) => {
    const bytes = new Uint8Array(dtype === 'U32' ? 4 : 8);
    const view = new DataView(bytes.buffer);
    if (dtype === 'U32') view.setUint32(0, Number(value), true);
    else if (dtype === 'I64') view.setBigInt64(0, value, true);
    else view.setBigUint64(0, value, true);
    return bytes;
  };

  // Every edge of int32 in each wider type; the U64 values at and above 2^64 - 2^31 used to read as negative int32.
  const inRange: [string, bigint][] = [
    ['I64', -(2n ** 31n)], ['I64', 2n ** 31n - 1n], ['U64', 0n], ['U64', 2n ** 31n - 1n], ['U32', 2n ** 31n - 1n],
  ];
  const outOfRange: [string, bigint][] = [
    ['I64', -(2n ** 31n) - 1n], ['I64', 2n ** 31n], ['I64', -(2n ** 63n)], ['I64', 2n ** 63n - 1n], ['I64', 2n ** 32n - 1n],
    ['U64', 2n ** 31n], ['U64', 2n ** 32n - 1n], ['U64', 2n ** 32n], ['U64', 2n ** 63n],
    ['U64', 2n ** 64n - 2n ** 31n], ['U64', 2n ** 64n - 1n], ['U32', 2n ** 31n], ['U32', 2n ** 32n - 1n],
  ];

  it.each(inRange)('%s %s loads exactly', (dtype, value) => {
    const bytes = buildSafetensors([
      { name: 'ids', dtype, shape: [2], bytes: concat([word(dtype as 'I64', 5n), word(dtype as 'I64', value)]) },
    ]);
    const { tensors } = decodeSafetensors(bytes);
    expect(values(tensors.ids!)).toEqual([5, Number(value)]);
    dispose(tensors);
  });

  it.each(outOfRange)('%s %s is an error naming the file, tensor, index and exact value', async (dtype, value) => {
    const bytes = buildSafetensors([
      { name: 'ok', dtype: 'F32', shape: [1], bytes: f32Bytes([1]) },
      { name: 'token_ids', dtype, shape: [1, 2], bytes: concat([word(dtype as 'I64', 5n), word(dtype as 'I64', value)]) },
    ]);
    const path = nodePath.join(tmp, `range-${dtype}-${value}.safetensors`);
    await fs.writeFile(path, bytes);
    await expectNoLeaks(async () => {
      await expect(loadSafetensors(path)).rejects.toThrow(
        new RegExp(
          `^${path.replace(/[.\\/]/g, '\\$&')}: tensor 'token_ids': ${dtype} element 1 is ${value}, outside int32 ` +
            '\\[-2147483648, 2147483647\\].*re-save this tensor as int32',
        ),
      );
    });
  });
});

describe('tensors larger than Node.js can allocate', () => {
  beforeAll(async () => {
    await setupTestBackend('cpu');
  });

  // A sparse file: the bytes past the header are never written, so the test needs no disk space. Node 20 caps a
  // typed array at 2^32 elements; where the cap is far higher the file could not be made, so the test skips.
  it.skipIf(bufferConstants.MAX_LENGTH > 2 ** 40)('names the file, the tensor, its size and the limit', async () => {
    const elements = Math.floor(bufferConstants.MAX_LENGTH / 4) + 1; // one F32 past the limit in bytes
    const header = new TextEncoder().encode(JSON.stringify({ huge: { dtype: 'F32', shape: [elements], data_offsets: [0, elements * 4] } }));
    const path = nodePath.join(tmp, 'huge.safetensors');
    await fs.writeFile(path, assemble(header, new Uint8Array(0)));
    await fs.truncate(path, 8 + header.byteLength + elements * 4);
    try {
      const start = performance.now();
      const error = await loadSafetensors(path).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SafetensorsError);
      expect((error as Error).message).toBe(
        `${path}: tensor 'huge' (F32 [${elements}], ${elements * 4} bytes) is larger than the largest array Node.js can ` +
          `allocate (${bufferConstants.MAX_LENGTH} elements, buffer.constants.MAX_LENGTH); TensorFlow.js holds each ` +
          'tensor in one array, so split the tensor when saving it',
      );
      expect(performance.now() - start).toBeLessThan(5000); // refused before reading, not after
      // The header alone still reads: only the allocation is refused.
      expect((await readSafetensorsHeader(path)).entries[0]!.shape).toEqual([elements]);
    } finally {
      await fs.rm(path, { force: true });
    }
  });
});

describe('atomic writes', () => {
  beforeAll(async () => {
    await setupTestBackend('cpu');
  });

  async function tempFiles(dir: string): Promise<string[]> {
    return (await fs.readdir(dir)).filter((n) => /\.tmp-\d+-/.test(n));
  }

  it('keeps the old file and leaves no temp file when a tensor fails midway through the write', async () => {
    const dir = await fs.mkdtemp(nodePath.join(tmp, 'atomic-'));
    const path = nodePath.join(dir, 'ckpt.safetensors');
    const first = tf.tensor1d([1, 2, 3]);
    await saveSafetensors(path, { first });
    const before = await fs.readFile(path);

    const second = tf.zeros([1000]);
    let headerWritten = false;
    const spy = vi.spyOn(second, 'data').mockImplementation(async () => {
      // By now the header and `first` are in the temp file.
      headerWritten = (await tempFiles(dir)).length === 1;
      throw new Error('device lost');
    });
    await expect(saveSafetensors(path, { first, second })).rejects.toThrow('device lost');
    expect(headerWritten).toBe(true);
    expect(spy).toHaveBeenCalled();
    expect(await fs.readFile(path)).toEqual(before);
    expect(await tempFiles(dir)).toEqual([]);
    first.dispose();
    second.dispose();
  });

  it('withAtomicFile removes the partial file when the writer throws; writeFileAtomic replaces content', async () => {
    const dir = await fs.mkdtemp(nodePath.join(tmp, 'atomic-'));
    const path = nodePath.join(dir, 'index.json');
    await writeFileAtomic(path, 'old');
    await expect(
      withAtomicFile(path, async (file) => {
        await file.write('partial new content');
        throw new Error('disk full');
      }),
    ).rejects.toThrow('disk full');
    expect(await fs.readFile(path, 'utf8')).toBe('old');
    expect(await fs.readdir(dir)).toEqual(['index.json']);
    await writeFileAtomic(path, new Uint8Array([110, 101, 119]));
    expect(await fs.readFile(path, 'utf8')).toBe('new');
    expect(await fs.readdir(dir)).toEqual(['index.json']);
  });
});
