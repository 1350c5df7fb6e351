/**
 * The cases of the JPEG fuzz test: libjpeg-made and jpeg-js bases, and damage inside their segments (frame, scan,
 * table, restart and APP fields), their entropy-coded data (bit flips, cuts, inserted markers) or their bytes.
 * Kept apart from the test so a failing case (printed as JSON) can be rebuilt with `buildJpeg`.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import jpeg from 'jpeg-js';
import { FIXTURES, concatBytes, randomBytes, readFixture } from './image-fixtures';
import { mutate, mutationArb, type Mutation } from './fuzz-helpers';

// Plain Uint8Array copies: a Buffer's slice() is a view, and the ops below must never write into a base.
export const BASES: Uint8Array[] = [
  ...readdirSync(join(FIXTURES, 'fuzz')).sort().map((f) => join('fuzz', f)),
  ...['gray.jpg', 'progressive.jpg', 'subsampled-420.jpg', 'cmyk.jpg'],
].map((f) => new Uint8Array(readFixture(f)));

/** jpeg-js encodings (baseline 4:4:4, the standard tables) of random sizes and qualities; made once (~50 ms each). */
const ENCODED = Array.from({ length: 16 }, (_, k) => {
  const [width, height, quality] = [1 + ((k * 13) % 40), 1 + ((k * 7 + 3) % 40), 5 + ((k * 37) % 96)];
  const rgba = randomBytes(width * height * 4, k + 1);
  // Half smooth, half noise: small and large coefficients both.
  for (let i = 0; i < width * height; i++) if ((i + k) % 2) rgba.set([(i * 3) & 255, (i * 5) & 255, (i * 7) & 255], 4 * i);
  return new Uint8Array(jpeg.encode({ data: rgba, width, height }, quality).data);
});

/** A base: a libjpeg-made fixture or a jpeg-js encoding. */
export const baseArb = fc.oneof(
  { weight: 3, arbitrary: fc.nat(BASES.length - 1).map((i) => ({ fixture: i })) },
  { weight: 1, arbitrary: fc.nat(ENCODED.length - 1).map((i) => ({ encoded: i })) },
);
export type Base = { fixture: number } | { encoded: number };

const baseBytes = (base: Base): Uint8Array => ('fixture' in base ? BASES[base.fixture] : ENCODED[base.encoded]);

/** Damage inside the structure: a segment's field, a segment dropped or repeated, the entropy-coded data. */
export type Op =
  | { kind: 'field'; segment: number; at: number; value: number }
  | { kind: 'drop'; segment: number }
  | { kind: 'dup'; segment: number }
  | { kind: 'flip'; scan: number; at: number; bit: number }
  | { kind: 'cut'; scan: number; at: number; count: number }
  | { kind: 'marker'; scan: number; at: number; marker: number }
  | { kind: 'bytes'; mutations: Mutation[] };

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('field' as const), segment: fc.nat(), at: fc.nat(), value: fc.oneof(fc.nat(255), fc.constantFrom(0, 1, 2, 3, 0x11, 0x21, 0x22, 0x12, 0x41, 63, 255)) }) },
  fc.record({ kind: fc.constant('drop' as const), segment: fc.nat() }),
  fc.record({ kind: fc.constant('dup' as const), segment: fc.nat() }),
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('flip' as const), scan: fc.nat(), at: fc.nat(), bit: fc.nat(7) }) },
  fc.record({ kind: fc.constant('cut' as const), scan: fc.nat(), at: fc.nat(), count: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('marker' as const), scan: fc.nat(), at: fc.nat(), marker: fc.constantFrom(0xd0, 0xd1, 0xd7, 0xd9, 0xda, 0xc4, 0xdb, 0xdd, 0xfe, 0x01, 0xff) }),
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('bytes' as const), mutations: fc.array(mutationArb, { minLength: 1, maxLength: 3 }) }) },
);

interface Segment {
  marker: number;
  start: number; // at its 0xff
  end: number; // exclusive; a scan includes its entropy-coded data
  /** For scans: where the entropy-coded data starts. */
  data: number;
}

/** The marker segments of a JPEG, scans with their entropy-coded data; stops where the structure breaks. */
export function segments(bytes: Uint8Array): Segment[] {
  const out: Segment[] = [{ marker: 0xd8, start: 0, end: 2, data: 2 }];
  let p = 2;
  while (p + 1 < bytes.length && bytes[p] === 0xff) {
    const marker = bytes[p + 1];
    if (marker === 0xd9) {
      out.push({ marker, start: p, end: p + 2, data: p + 2 });
      break;
    }
    if (p + 4 > bytes.length) break;
    const end = p + 2 + ((bytes[p + 2] << 8) | bytes[p + 3]);
    if (end > bytes.length) break;
    let stop = end;
    if (marker === 0xda) {
      while (stop + 1 < bytes.length && !(bytes[stop] === 0xff && bytes[stop + 1] !== 0 && (bytes[stop + 1] < 0xd0 || bytes[stop + 1] > 0xd7))) stop++;
    }
    out.push({ marker, start: p, end: stop, data: end });
    p = stop;
  }
  return out;
}

export function buildJpeg(base: Base, ops: Op[]): Uint8Array {
  let bytes = baseBytes(base);
  for (const op of ops) {
    const segs = segments(bytes);
    const scans = segs.filter((s) => s.marker === 0xda && s.end > s.data);
    if (op.kind === 'bytes') {
      bytes = mutate(bytes, op.mutations);
    } else if (op.kind === 'field' || op.kind === 'drop' || op.kind === 'dup') {
      const s = segs[op.segment % segs.length];
      if (op.kind === 'field') {
        // A byte of the segment's header fields (after the marker; for scans, before the entropy-coded data).
        const span = s.data - s.start - 2;
        if (span > 0) (bytes = bytes.slice())[s.start + 2 + (op.at % span)] = op.value;
      } else if (op.kind === 'drop') {
        bytes = concatBytes([bytes.subarray(0, s.start), bytes.subarray(s.end)]);
      } else {
        bytes = concatBytes([bytes.subarray(0, s.end), bytes.subarray(s.start, s.end), bytes.subarray(s.end)]);
      }
    } else if (scans.length) {
      const s = scans[op.scan % scans.length];
      const at = s.data + (op.at % (s.end - s.data));
      if (op.kind === 'flip') (bytes = bytes.slice())[at] ^= 1 << op.bit;
      else if (op.kind === 'cut') bytes = concatBytes([bytes.subarray(0, at), bytes.subarray(Math.min(s.end, at + op.count))]);
      else bytes = concatBytes([bytes.subarray(0, at), new Uint8Array([0xff, op.marker]), bytes.subarray(at)]);
    }
  }
  return bytes;
}

