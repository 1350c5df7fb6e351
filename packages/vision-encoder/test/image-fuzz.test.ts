// Fuzzing the decoders with mutated and truncated PNG/JPEG bytes: a valid image or a clear ImageInputError,
// never another exception, a hang or a leaked tensor.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { setupTestBackend } from '@chimera/core/testing';
import { decodeImageSync } from '../src/image/decode';
import { ImageInputError } from '../src/image/errors';
import { clipProcessor } from '../src/image/processor';
import { crc32, encodePng, randomBytes, readFixture } from './image-fixtures';

const MAX_PIXELS = 2_000_000;
/** One decode of a mutated small file must stay far from a hang even on a loaded machine. */
const MAX_MS_PER_CASE = 3000;

type Mutation =
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: number[] }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'size'; at: number; value: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.nat(255) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.array(fc.nat(255), { maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 32 }) }) },
  // Aim at the first 40 bytes, where PNG IHDR and JPEG frame sizes usually live.
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('size' as const), at: fc.nat(40), value: fc.nat(255) }) },
);

function mutate(base: Uint8Array, mutations: Mutation[]): Uint8Array {
  let bytes = Array.from(base);
  for (const m of mutations) {
    const at = bytes.length === 0 ? 0 : m.at % (bytes.length + 1);
    if (m.kind === 'set' || m.kind === 'size') {
      if (at < bytes.length) bytes[at] = m.value;
    } else if (m.kind === 'truncate') bytes = bytes.slice(0, at);
    else if (m.kind === 'insert') bytes.splice(at, 0, ...m.bytes);
    else bytes.splice(at, m.count);
  }
  return new Uint8Array(bytes);
}

/** Recomputes every chunk CRC so mutations reach pngjs's decoding instead of stopping at the CRC check. */
function fixPngCrcs(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  for (let offset = 8; offset + 12 <= out.length; ) {
    const length = view.getUint32(offset);
    if (offset + 12 + length > out.length) break;
    view.setUint32(offset + 8 + length, crc32(out.subarray(offset + 4, offset + 8 + length)));
    offset += 12 + length;
  }
  return out;
}

interface Stats {
  ok: number;
  errors: Map<string, number>;
  slowestMs: number;
}

function decodeOutcome(bytes: Uint8Array, stats: Stats): void {
  const start = performance.now();
  try {
    const img = decodeImageSync(bytes, { maxPixels: MAX_PIXELS });
    expect(Number.isInteger(img.width) && img.width > 0).toBe(true);
    expect(Number.isInteger(img.height) && img.height > 0).toBe(true);
    expect(img.width * img.height).toBeLessThanOrEqual(MAX_PIXELS);
    expect(img.data).toBeInstanceOf(Uint8Array);
    expect(img.data.length).toBe(img.width * img.height * 3);
    stats.ok++;
  } catch (err) {
    if (!(err instanceof ImageInputError)) throw new Error(`non-ImageInputError for ${bytes.length} bytes: ${String(err)}`);
    expect(err.message).toMatch(new RegExp(`^<${bytes.length} bytes>: `));
    expect(err.message.length).toBeGreaterThan(30);
    stats.errors.set(err.code, (stats.errors.get(err.code) ?? 0) + 1);
  }
  stats.slowestMs = Math.max(stats.slowestMs, performance.now() - start);
  expect(performance.now() - start).toBeLessThan(MAX_MS_PER_CASE);
}

function pngBases(): Uint8Array[] {
  const png = new PNG({ width: 24, height: 16 });
  png.data.set(randomBytes(24 * 16 * 4, 21));
  return [
    new Uint8Array(PNG.sync.write(png)),
    encodePng({
      width: 13,
      height: 11,
      colorType: 3,
      bitDepth: 4,
      samples: Array.from({ length: 143 }, (_, i) => i % 16),
      palette: Array.from({ length: 16 }, (_, i) => [i * 16, 255 - i * 16, i * 7] as [number, number, number]),
      trns: [0, 128, 255],
      interlace: true,
    }),
    encodePng({ width: 9, height: 7, colorType: 0, bitDepth: 16, samples: Array.from({ length: 63 }, (_, i) => i * 1000) }),
  ];
}

function jpegBases(): Uint8Array[] {
  const w = 32;
  const h = 24;
  const rgba = randomBytes(w * h * 4, 22);
  return [
    new Uint8Array(jpeg.encode({ data: rgba, width: w, height: h }, 90).data),
    readFixture('progressive.jpg'),
    readFixture('gray.jpg'),
    readFixture('cmyk.jpg'),
  ];
}

describe('decoder fuzzing', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('PNG: 600 mutated or truncated files give images or ImageInputErrors', () => {
    const bases = pngBases();
    const stats: Stats = { ok: 0, errors: new Map(), slowestMs: 0 };
    fc.assert(
      fc.property(fc.nat(bases.length - 1), fc.array(mutationArb, { minLength: 1, maxLength: 5 }), fc.boolean(), (k, mutations, fixCrc) => {
        const bytes = mutate(bases[k], mutations);
        decodeOutcome(fixCrc ? fixPngCrcs(bytes) : bytes, stats);
      }),
      { numRuns: 600, seed: 7 },
    );
    // The fuzzer must reach past the CRC check: some valid decodes and several kinds of refusal.
    expect(stats.ok).toBeGreaterThan(20);
    expect(stats.errors.get('corrupt') ?? 0).toBeGreaterThan(100);
    expect(stats.slowestMs).toBeLessThan(MAX_MS_PER_CASE);
  });

  it('JPEG: 600 mutated or truncated files give images or ImageInputErrors', () => {
    const bases = jpegBases();
    const stats: Stats = { ok: 0, errors: new Map(), slowestMs: 0 };
    fc.assert(
      fc.property(fc.nat(bases.length - 1), fc.array(mutationArb, { minLength: 1, maxLength: 5 }), (k, mutations) => {
        decodeOutcome(mutate(bases[k], mutations), stats);
      }),
      { numRuns: 600, seed: 8 },
    );
    expect(stats.ok).toBeGreaterThan(20);
    expect(stats.errors.get('corrupt') ?? 0).toBeGreaterThan(100);
  });

  it('random bytes behind valid magic numbers are refused cleanly', () => {
    const stats: Stats = { ok: 0, errors: new Map(), slowestMs: 0 };
    fc.assert(
      fc.property(fc.boolean(), fc.uint8Array({ maxLength: 400 }), (isPng, tail) => {
        const magic = isPng ? [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] : [0xff, 0xd8, 0xff];
        decodeOutcome(new Uint8Array([...magic, ...tail]), stats);
      }),
      { numRuns: 300, seed: 9 },
    );
    expect(stats.ok).toBe(0);
  });

  it('bad input through the processor leaks no tensors', () => {
    const bases = [...pngBases(), ...jpegBases()];
    const processor = clipProcessor({ size: 8, maxPixels: MAX_PIXELS });
    const before = tf.memory().numTensors;
    fc.assert(
      fc.property(fc.nat(bases.length - 1), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (k, mutations) => {
        try {
          processor.process(mutate(bases[k], mutations)).dispose();
        } catch (err) {
          expect(err).toBeInstanceOf(ImageInputError);
        }
      }),
      { numRuns: 150, seed: 10 },
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});
