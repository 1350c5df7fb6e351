// Fuzzing the decoders without a reference decoder (runs everywhere, PIL or not): mutated and truncated PNG/JPEG
// bytes and random bytes behind valid magic numbers give a valid image or a clear ImageInputError, never another
// exception, a decode over 5 s, two different answers for the same bytes, or a leaked tensor. The comparisons
// with PIL live in image-fuzz-png.test.ts and image-fuzz-jpeg.test.ts.
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { fuzzRuns, fuzzTimeout, setupTestBackend } from '@chimera/core/testing';
import { ImageInputError } from '../src/image/errors';
import { clipProcessor } from '../src/image/processor';
import { decodeTwice, fixPngCrcs, HANG_MS, mutate, mutationArb } from './fuzz-helpers';
import { encodePng, randomBytes, readFixture } from './image-fixtures';

const MAX_PIXELS = 2_000_000;
const RUNS = fuzzRuns(600);

interface Stats {
  ok: number;
  errors: Map<string, number>;
  slowest: { ms: number };
}

const newStats = (): Stats => ({ ok: 0, errors: new Map(), slowest: { ms: 0 } });

function record(bytes: Uint8Array, stats: Stats): void {
  const outcome = decodeTwice(bytes, { maxPixels: MAX_PIXELS }, stats.slowest);
  if (outcome.ok) stats.ok++;
  else stats.errors.set(outcome.error.code, (stats.errors.get(outcome.error.code) ?? 0) + 1);
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
      filters: [1, 2, 3, 4, 0],
    }),
    encodePng({ width: 9, height: 7, colorType: 0, bitDepth: 16, samples: Array.from({ length: 63 }, (_, i) => i * 1000), filters: [4, 3] }),
  ];
}

function jpegBases(): Uint8Array[] {
  const w = 32;
  const h = 24;
  const rgba = randomBytes(w * h * 4, 22);
  return [
    new Uint8Array(jpeg.encode({ data: rgba, width: w, height: h }, 90).data),
    ...['progressive.jpg', 'gray.jpg', 'cmyk.jpg', 'fuzz/restart-420.jpg', 'fuzz/progressive-420.jpg'].map((f) => new Uint8Array(readFixture(f))),
  ];
}

describe('decoder fuzzing (no reference decoder)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it(
    `PNG: ${RUNS} mutated or truncated files give images or ImageInputErrors, the same twice, each within ${HANG_MS} ms`,
    () => {
      const bases = pngBases();
      const stats = newStats();
      fc.assert(
        fc.property(fc.nat(bases.length - 1), fc.array(mutationArb, { minLength: 1, maxLength: 5 }), fc.boolean(), (k, mutations, fixCrc) => {
          const bytes = mutate(bases[k], mutations);
          record(fixCrc ? fixPngCrcs(bytes) : bytes, stats);
        }),
        { numRuns: RUNS, seed: 7 },
      );
      // Nearly every mutation is real damage that the CRCs or the Adler-32 catch, so few files decode (those
      // changed only after IEND or in a chunk nobody reads); the run must still see both outcomes.
      expect(stats.ok).toBeGreaterThan(0);
      expect(stats.errors.get('corrupt') ?? 0).toBeGreaterThan(RUNS * 0.5);
    },
    fuzzTimeout(RUNS, 20),
  );

  it(
    `JPEG: ${RUNS} mutated or truncated files give images or ImageInputErrors, the same twice, each within ${HANG_MS} ms`,
    () => {
      const bases = jpegBases();
      const stats = newStats();
      fc.assert(
        fc.property(fc.nat(bases.length - 1), fc.array(mutationArb, { minLength: 1, maxLength: 5 }), (k, mutations) => {
          record(mutate(bases[k], mutations), stats);
        }),
        { numRuns: RUNS, seed: 8 },
      );
      expect(stats.ok).toBeGreaterThan(RUNS * 0.02);
      expect(stats.errors.get('corrupt') ?? 0).toBeGreaterThan(RUNS * 0.2);
    },
    fuzzTimeout(RUNS, 20),
  );

  it(
    `${Math.ceil(RUNS / 2)} runs of random bytes behind valid magic numbers are refused cleanly`,
    () => {
      const stats = newStats();
      fc.assert(
        fc.property(fc.boolean(), fc.uint8Array({ maxLength: 400 }), (isPng, tail) => {
          const magic = isPng ? [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] : [0xff, 0xd8, 0xff];
          record(new Uint8Array([...magic, ...tail]), stats);
        }),
        { numRuns: Math.ceil(RUNS / 2), seed: 9 },
      );
      expect(stats.ok).toBe(0);
    },
    fuzzTimeout(RUNS, 10),
  );

  it(
    'bad input through the processor leaks no tensors',
    () => {
      const bases = [...pngBases(), ...jpegBases()];
      const processor = clipProcessor({ size: 8, maxPixels: MAX_PIXELS });
      const before = tf.memory().numTensors;
      let refused = 0;
      fc.assert(
        fc.property(fc.nat(bases.length - 1), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (k, mutations) => {
          try {
            processor.process(mutate(bases[k], mutations)).dispose();
          } catch (err) {
            expect(err).toBeInstanceOf(ImageInputError);
            refused++;
          }
        }),
        { numRuns: Math.ceil(RUNS / 4), seed: 10 },
      );
      expect(refused).toBeGreaterThan(0);
      expect(tf.memory().numTensors).toBe(before);
    },
    fuzzTimeout(RUNS, 40),
  );
});
