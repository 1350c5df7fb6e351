/**
 * The cases of the PNG fuzz test: generated PNGs (any colour type, bit depth, size, interlace, filter types,
 * palette and transparency) damaged at one level or several: their filtered scanlines (recompressed validly),
 * their zlib stream, their chunk list, or their bytes. Kept apart from the test so a failing case (printed as
 * JSON) can be rebuilt with `buildPng`.
 */
import { deflateSync } from 'node:zlib';
import fc from 'fast-check';
import { assemblePng, concatBytes, pngChunk, pngParts, randomBytes, type PngSpec } from './image-fixtures';
import { fixPngCrcs, mutate, mutationArb, type Mutation } from './fuzz-helpers';

const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

export const specArb = fc.record({
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
export type Spec = typeof specArb extends fc.Arbitrary<infer T> ? T : never;

/** Damage at one level of the file: scanlines (recompressed validly), zlib stream, chunk list, or bytes. */
export type Op =
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

export const opArb: fc.Arbitrary<Op> = fc.oneof(
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

export function buildPng(s: Spec, ops: Op[]): Uint8Array {
  const parts = pngParts(pngSpec(s));
  let raw = parts.raw;
  for (const op of ops) {
    if (op.kind === 'raw-set' && raw.length) (raw = new Uint8Array(raw))[op.at % raw.length] = op.value;
    if (op.kind === 'raw-cut') raw = raw.subarray(0, op.at % (raw.length + 1));
    if (op.kind === 'raw-extend') raw = concatBytes([raw, new Uint8Array(op.bytes)]);
  }
  let z: Uint8Array = deflateSync(raw, { level: s.seed % 10 });
  for (const op of ops) {
    if (op.kind === 'z-set' && z.length) (z = new Uint8Array(z))[op.at % z.length] = op.value;
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

