/**
 * PNG fuzzing against PIL. Each case is a generated PNG (any colour type, bit depth, size, interlace, filter
 * types, palette and transparency) damaged at one or more levels: its filtered scanlines (then recompressed
 * validly), its zlib stream, its chunk list, or its bytes. Every case is decoded twice by Chimera and once by PIL.
 *
 * What must hold, case by case:
 * - no crash (only ImageInputError, naming the source), no decode over 5 s, the same answer twice;
 * - no silent misread: Chimera accepts nothing the test's own checker (inspectPng: chunk walk, CRCs, zlib,
 *   sizes, filter types) finds damaged, and when both accept, the pixels are PIL's exactly (16-bit colour:
 *   see comparePngWithPil), alpha composites included;
 * - Chimera never accepts what PIL refuses;
 * - Chimera refuses what PIL accepts only for a named reason the checker confirms (PNG_PIL_LENIENCY).
 *
 * Case count: CHIMERA_FUZZ_RUNS (npm run fuzz: 10,000), else the reduced count below for CI.
 */
import { deflateSync } from 'node:zlib';
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { fuzzRuns, fuzzTimeout } from '@chimera/core/testing';
import { decodeImageSync } from '../src/image/decode';
import { assemblePng, concatBytes, pngChunk, pngParts, randomBytes, type PngSpec } from './image-fixtures';
import {
  comparePngWithPil,
  decodeTwice,
  fixPngCrcs,
  inspectPng,
  PIXEL_NEUTRAL_ISSUES,
  mutate,
  mutationArb,
  pilOnWhite,
  Tally,
  type Mutation,
  type PngIssue,
} from './fuzz-helpers';
import { PilOracle, pilAvailable } from './pil-oracle';

const MAX_PIXELS = 2_000_000;
const RUNS = fuzzRuns(3000);

/**
 * Defects PIL does not notice, so it decodes files Chimera refuses. Each is a real defect (the checker finds it)
 * and the file is refused because its pixels cannot be trusted or are ambiguous.
 */
const PNG_PIL_LENIENCY: Partial<Record<PngIssue | 'palette-index', string>> = {
  crc: 'PIL checks the CRCs of the chunks it parses before the image data only, never of IDAT or later chunks',
  zlib: 'PIL stops inflating once it has its rows: it never sees a truncated end, a bad Adler-32 or damage after them',
  'data-length': 'PIL stops inflating once it has its rows, so excess image data goes unnoticed',
  'chunk-structure': 'PIL reads nothing after the image data: a missing IEND or a damaged later chunk goes unnoticed',
  'chunk-order': 'PIL does not check chunk order: IHDR not first, IDAT chunks split by others, PLTE late or repeated',
  'critical-chunk': 'PIL skips chunks it does not know, critical or not (the PNG spec says a decoder must refuse them)',
  method: 'PIL ignores the compression and filter method bytes of IHDR; PNG defines only method 0 for each',
  transparency: 'PIL applies a misplaced tRNS (libpng drops it): an ambiguous file',
  'palette-index': 'PIL maps palette indices beyond the PLTE entries to its padding colour; the spec calls them an error',
};

/**
 * The one defect PIL refuses and Chimera reads past: a metadata chunk too short for the fields PIL parses from
 * it (gAMA, pHYs, sRGB). It carries no pixel data; Chimera ignores these chunks, as libpng does with a warning.
 */
const PIL_STRICTNESS = { metadata: 'PIL parses gAMA/pHYs/sRGB and fails on a short one; no pixel depends on them' };
void PIL_STRICTNESS;

const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

const specArb = fc.record({
  colorType: fc.constantFrom(0, 2, 3, 4, 6),
  depth: fc.nat(4),
  width: fc.integer({ min: 1, max: 20 }),
  height: fc.integer({ min: 1, max: 20 }),
  interlace: fc.boolean(),
  filters: fc.array(fc.nat(4), { minLength: 1, maxLength: 4 }),
  smooth: fc.boolean(),
  seed: fc.nat(),
  paletteSize: fc.integer({ min: 1, max: 256 }),
  trns: fc.boolean(),
  idatChunks: fc.integer({ min: 1, max: 3 }),
});
type Spec = typeof specArb extends fc.Arbitrary<infer T> ? T : never;

/** Damage at one level of the file: scanlines (recompressed validly), zlib stream, chunk list, or bytes. */
type Op =
  | { kind: 'raw-set'; at: number; value: number }
  | { kind: 'raw-cut'; at: number }
  | { kind: 'raw-extend'; bytes: number[] }
  | { kind: 'z-set'; at: number; value: number }
  | { kind: 'z-cut'; at: number }
  | { kind: 'z-append'; bytes: number[] }
  | { kind: 'chunk-drop'; index: number }
  | { kind: 'chunk-dup'; index: number }
  | { kind: 'chunk-swap'; a: number; b: number }
  | { kind: 'chunk-insert'; index: number; type: string; data: number[] }
  | { kind: 'bytes'; mutations: Mutation[]; fixCrc: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('raw-set' as const), at: fc.nat(), value: fc.nat(255) }),
  fc.record({ kind: fc.constant('raw-cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('raw-extend' as const), bytes: fc.array(fc.nat(255), { minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('z-set' as const), at: fc.nat(), value: fc.nat(255) }),
  fc.record({ kind: fc.constant('z-cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('z-append' as const), bytes: fc.array(fc.nat(255), { minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('chunk-drop' as const), index: fc.nat() }),
  fc.record({ kind: fc.constant('chunk-dup' as const), index: fc.nat() }),
  fc.record({ kind: fc.constant('chunk-swap' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({
    kind: fc.constant('chunk-insert' as const),
    index: fc.nat(),
    type: fc.constantFrom('tEXt', 'gAMA', 'zzZz', 'ABCD', 'tRNS', 'PLTE', 'IDAT', 'IEND'),
    data: fc.array(fc.nat(255), { maxLength: 12 }),
  }),
  { arbitrary: fc.record({ kind: fc.constant('bytes' as const), mutations: fc.array(mutationArb, { minLength: 1, maxLength: 3 }), fixCrc: fc.boolean() }), weight: 3 },
);

function pngSpec(s: Spec): PngSpec {
  const depths = DEPTHS[s.colorType];
  const bitDepth = depths[s.depth % depths.length] as PngSpec['bitDepth'];
  const colorType = s.colorType as PngSpec['colorType'];
  const channels = CHANNELS[colorType];
  const max = colorType === 3 ? Math.min(s.paletteSize, 2 ** bitDepth) - 1 : 2 ** bitDepth - 1;
  const noise = randomBytes(s.width * s.height * channels * 2, s.seed + 1);
  const samples = Array.from({ length: s.width * s.height * channels }, (_, i) => {
    const p = Math.floor(i / channels);
    const [x, y, c] = [p % s.width, Math.floor(p / s.width), i % channels];
    const v = s.smooth ? (x * 37 + y * 11 + c * 71) * 977 : (noise[2 * i] << 8) | noise[2 * i + 1];
    return v % (max + 1);
  });
  const spec: PngSpec = { width: s.width, height: s.height, colorType, bitDepth, samples, interlace: s.interlace, filters: s.filters };
  if (colorType === 3) {
    const entries = max + 1;
    const rgb = randomBytes(entries * 4, s.seed + 2);
    spec.palette = Array.from({ length: entries }, (_, i) => [rgb[4 * i], rgb[4 * i + 1], rgb[4 * i + 2]] as [number, number, number]);
    if (s.trns) spec.trns = Array.from(rgb.subarray(0, 1 + (s.seed % entries)), (v, i) => (i % 3 === 0 ? 0 : v));
  } else if (s.trns && (colorType === 0 || colorType === 2)) {
    spec.trns = samples.slice(0, channels); // the first pixel's colour is the key: some pixels are transparent
  }
  return spec;
}

function buildPng(s: Spec, ops: Op[]): Uint8Array {
  const parts = pngParts(pngSpec(s));
  let raw = parts.raw;
  for (const op of ops) {
    if (op.kind === 'raw-set' && raw.length) (raw = raw.slice())[op.at % raw.length] = op.value;
    if (op.kind === 'raw-cut') raw = raw.subarray(0, op.at % (raw.length + 1));
    if (op.kind === 'raw-extend') raw = concatBytes([raw, new Uint8Array(op.bytes)]);
  }
  let z: Uint8Array = deflateSync(raw, { level: s.seed % 10 });
  for (const op of ops) {
    if (op.kind === 'z-set' && z.length) (z = z.slice())[op.at % z.length] = op.value;
    if (op.kind === 'z-cut') z = z.subarray(0, op.at % (z.length + 1));
    if (op.kind === 'z-append') z = concatBytes([z, new Uint8Array(op.bytes)]);
  }
  // The chunk list: rebuild it from the assembled file so IDAT splitting and IEND are in it.
  const whole = assemblePng(parts.head, z, s.idatChunks);
  const chunks: Uint8Array[] = [];
  const view = new DataView(whole.buffer);
  for (let o = 8; o < whole.length; o += 12 + view.getUint32(o)) chunks.push(whole.subarray(o, o + 12 + view.getUint32(o)));
  for (const op of ops) {
    const n = chunks.length;
    if (op.kind === 'chunk-drop' && n) chunks.splice(op.index % n, 1);
    if (op.kind === 'chunk-dup' && n) chunks.splice(op.index % n, 0, chunks[op.index % n]);
    if (op.kind === 'chunk-swap' && n) [chunks[op.a % n], chunks[op.b % n]] = [chunks[op.b % n], chunks[op.a % n]];
    if (op.kind === 'chunk-insert') chunks.splice(op.index % (n + 1), 0, pngChunk(op.type, new Uint8Array(op.data)));
  }
  let bytes = concatBytes([whole.subarray(0, 8), ...chunks]);
  for (const op of ops) {
    if (op.kind === 'bytes') bytes = op.fixCrc ? fixPngCrcs(mutate(bytes, op.mutations)) : mutate(bytes, op.mutations);
  }
  return bytes;
}

const describeCase = (s: Spec, ops: Op[]) => JSON.stringify({ spec: s, ops });

describe('PNG fuzzing against PIL', () => {
  const havePil = pilAvailable();

  it.skipIf(!havePil)(
    `${RUNS} generated and damaged PNGs: no crash, hang or misread; deterministic; PIL's pixels and verdicts`,
    async () => {
      const pil = new PilOracle(MAX_PIXELS);
      const tally = new Tally();
      const slowest = { ms: 0 };
      const started = performance.now();
      try {
        await fc.assert(
          fc.asyncProperty(specArb, fc.array(opArb, { maxLength: 3 }), async (s, ops) => {
            const bytes = buildPng(s, ops);
            const example = () => describeCase(s, ops);
            const inspection = inspectPng(bytes, MAX_PIXELS);
            const chimera = decodeTwice(bytes, { maxPixels: MAX_PIXELS, background: 'ignore' }, slowest);
            const theirs = await pil.decode(bytes);
            const pilOk = theirs.ok && theirs.format === 'PNG';
            tally.add(`cases ${ops.length === 0 ? 'intact' : 'damaged'}`);
            const damage = [...inspection.issues].filter((i) => !PIXEL_NEUTRAL_ISSUES.has(i));
            if (chimera.ok && damage.length > 0) {
              tally.add(`MISREAD: accepted a file with ${damage.join(', ')}`, example());
              return;
            }
            if (chimera.ok && pilOk) {
              tally.add('agree: both decode');
              const { image } = chimera;
              if (image.width !== theirs.width || image.height !== theirs.height) {
                tally.add('MISREAD: size differs from PIL', example());
                return;
              }
              const mismatch = comparePngWithPil(image, theirs, inspection.bitDepth);
              if (mismatch) tally.add(`MISREAD: pixels differ from PIL`, `${mismatch} in ${example()}`);
              // Alpha: Chimera's default composite on white against PIL's alpha (8-bit alpha only: PIL keeps
              // the high byte of 16-bit alpha).
              const onWhite = inspection.bitDepth <= 8 ? pilOnWhite(theirs, image.width * image.height) : null;
              if (onWhite) {
                const composited = decodeImageSync(bytes, { maxPixels: MAX_PIXELS });
                if (Buffer.compare(Buffer.from(composited.data), Buffer.from(onWhite)) !== 0) {
                  tally.add('MISREAD: alpha composite differs from PIL', example());
                } else tally.add('agree: alpha composite compared');
              }
              return;
            }
            if (chimera.ok && inspection.issues.has('metadata')) {
              tally.add('PIL strict: metadata'); // see PIL_STRICTNESS
              return;
            }
            if (chimera.ok) {
              tally.add('UNEXPLAINED: Chimera decodes, PIL refuses', `${theirs.ok ? theirs.format : theirs.error} in ${example()}`);
              return;
            }
            if (!pilOk) {
              tally.add(`agree: both refuse (${chimera.error.code})`);
              return;
            }
            // Chimera refuses, PIL decodes: name the defect, confirmed by the checker (or by PIL's own indices).
            const paletteIndex =
              theirs.ok && theirs.maxIndex !== undefined && inspection.colorType === 3 && theirs.maxIndex >= inspection.paletteEntries;
            const reason = [...inspection.issues].find((i) => PNG_PIL_LENIENCY[i]) ?? (paletteIndex ? 'palette-index' : null);
            if (reason) tally.add(`PIL lenient: ${reason}`);
            else tally.add('UNEXPLAINED: Chimera refuses, PIL decodes', `${chimera.error.message} in ${example()}`);
          }),
          { numRuns: RUNS, seed: 20251202, endOnFailure: true },
        );
      } finally {
        pil.close();
      }
      const seconds = (performance.now() - started) / 1000;
      console.log(tally.report(`PNG fuzz: ${RUNS} cases in ${seconds.toFixed(1)} s, slowest decode ${slowest.ms.toFixed(1)} ms`));
      expect(tally.keys('MISREAD'), tally.report('misreads')).toEqual([]);
      expect(tally.keys('UNEXPLAINED'), tally.report('unexplained disagreements with PIL')).toEqual([]);
      // The run must reach every verdict: intact files that decode, damaged ones refused, alpha compared.
      expect(tally.get('agree: both decode')).toBeGreaterThan(RUNS * 0.15);
      expect(tally.total('agree: both refuse')).toBeGreaterThan(RUNS * 0.15);
      expect(tally.get('agree: alpha composite compared')).toBeGreaterThan(RUNS * 0.01);
      expect(tally.total('PIL lenient')).toBeGreaterThan(0);
    },
    fuzzTimeout(RUNS, 20),
  );
});
