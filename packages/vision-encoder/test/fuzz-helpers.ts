/**
 * Shared machinery of the image fuzz tests: byte-level mutations, the decode-twice check (no crash, no hang, the
 * same answer twice), a tally that prints what a run found, and for PNG an independent structure checker that
 * says what is wrong with a file, so every disagreement with PIL is tied to a defect the test verified itself.
 */
import { inflateSync } from 'node:zlib';
import fc from 'fast-check';
import { expect } from 'vitest';
import { decodeImageSync, type DecodeOptions } from '../src/image/decode';
import { ImageInputError } from '../src/image/errors';
import type { RgbImage } from '../src/image/types';
import { crc32 } from './image-fixtures';

/** The issue's bound: no single decode may take longer (a hang), whatever the machine's load. */
export const HANG_MS = 5000;

export type Mutation =
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: number[] }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'size'; at: number; value: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.nat(255) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.array(fc.nat(255), { maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 32 }) }) },
  // Aim at the first 40 bytes, where PNG IHDR and JPEG frame sizes usually live.
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('size' as const), at: fc.nat(40), value: fc.nat(255) }) },
);

export function mutate(base: Uint8Array, mutations: Mutation[]): Uint8Array {
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

/** Recomputes every chunk CRC so mutations reach the decoder's later stages instead of stopping at the CRC check. */
export function fixPngCrcs(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes); // a copy even for a Buffer, whose slice() is a view
  const view = new DataView(out.buffer);
  for (let offset = 8; offset + 12 <= out.length; ) {
    const length = view.getUint32(offset);
    if (offset + 12 + length > out.length) break;
    view.setUint32(offset + 8 + length, crc32(out.subarray(offset + 4, offset + 8 + length)));
    offset += 12 + length;
  }
  return out;
}

export type Outcome = { ok: true; image: RgbImage } | { ok: false; error: ImageInputError };

/**
 * Decodes twice with the same options. Fails the test on a crash (anything thrown but an ImageInputError naming
 * the source), on a decode slower than HANG_MS, or when the two decodes differ (pixels or error).
 */
export function decodeTwice(bytes: Uint8Array, options: DecodeOptions, slowest: { ms: number }): Outcome {
  const once = (): Outcome => {
    const start = performance.now();
    let result: Outcome;
    try {
      result = { ok: true, image: decodeImageSync(bytes, options) };
    } catch (err) {
      if (!(err instanceof ImageInputError)) {
        throw new Error(`crash: ${bytes.length} bytes threw ${err instanceof Error ? `${err.name}: ${err.message}` : `a non-Error ${String(err)}`}`);
      }
      result = { ok: false, error: err };
    }
    const ms = performance.now() - start;
    slowest.ms = Math.max(slowest.ms, ms);
    expect(ms, `hang: one decode of ${bytes.length} bytes took ${ms.toFixed(0)} ms`).toBeLessThan(HANG_MS);
    return result;
  };
  const a = once();
  const b = once();
  if (a.ok && b.ok) {
    expect(b.image.width).toBe(a.image.width);
    expect(b.image.height).toBe(a.image.height);
    expect(Buffer.compare(Buffer.from(a.image.data), Buffer.from(b.image.data)), 'nondeterministic pixels').toBe(0);
    const { width, height, data } = a.image;
    expect(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0).toBe(true);
    expect(data.length).toBe(width * height * 3);
  } else if (!a.ok && !b.ok) {
    expect(b.error.message, 'nondeterministic error').toBe(a.error.message);
    expect(a.error.message.startsWith(`<${bytes.length} bytes>: `), a.error.message).toBe(true);
    expect(a.error.message.length).toBeGreaterThan(40);
  } else {
    throw new Error(`nondeterministic: one decode ${a.ok ? 'succeeded' : 'failed'}, the other ${b.ok ? 'succeeded' : 'failed'}`);
  }
  return a;
}

/** Counts by category, with a few examples each, for the end-of-run report. */
export class Tally {
  readonly counts = new Map<string, number>();
  private readonly examples = new Map<string, string[]>();

  add(key: string, example?: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    if (example !== undefined) {
      const list = this.examples.get(key) ?? [];
      if (list.length < 3) list.push(example);
      this.examples.set(key, list);
    }
  }

  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** Sum of the counts whose key starts with `prefix`. */
  total(prefix: string): number {
    let n = 0;
    for (const [k, v] of this.counts) if (k.startsWith(prefix)) n += v;
    return n;
  }

  keys(prefix: string): string[] {
    return [...this.counts.keys()].filter((k) => k.startsWith(prefix)).sort();
  }

  report(title: string): string {
    const lines = [...this.counts.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `  ${k}: ${v}`);
    for (const [k, list] of this.examples) for (const e of list) lines.push(`    e.g. ${k}: ${e}`);
    return `${title}\n${lines.join('\n')}`;
  }
}

/** What is wrong with a PNG, found by the test on its own (chunk walk, CRCs, zlib, sizes); empty when intact. */
export interface PngInspection {
  issues: Set<PngIssue>;
  /** PLTE entries, when there is a palette. */
  paletteEntries: number;
  bitDepth: number;
  colorType: number;
}

export type PngIssue =
  | 'header' // signature or IHDR unusable
  | 'over-cap' // more pixels than the test's cap: refused from the header by both decoders
  | 'method' // IHDR names a compression or filter method other than 0, the only ones PNG defines
  | 'crc' // a chunk's CRC does not match
  | 'chunk-structure' // a chunk is cut off, has a non-letter name or an absurd length; IEND missing
  | 'chunk-order' // IDAT chunks not consecutive, PLTE after IDAT or repeated, palette image without PLTE
  | 'critical-chunk' // a critical chunk PNG does not define
  | 'transparency' // tRNS after the image data, before PLTE, repeated, or too short for its colour key
  | 'metadata' // an ancillary chunk PIL parses is too short for its fields (gAMA, pHYs, sRGB): no pixel data
  | 'zlib' // the image data is not one complete zlib stream with a valid checksum
  | 'data-length' // it inflates to more or fewer bytes than the header implies
  | 'filter-type'; // a scanline's filter type is not 0-4

const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/** Inspects a PNG the way the spec reads; for the fuzz test's verdicts, independent of the decoder. */
/** Defects that change no pixel: a decoder may read past them. */
export const PIXEL_NEUTRAL_ISSUES: ReadonlySet<PngIssue> = new Set(['metadata']);

export function inspectPng(bytes: Uint8Array, maxPixels: number): PngInspection {
  const issues = new Set<PngIssue>();
  const result: PngInspection = { issues, paletteEntries: 0, bitDepth: 0, colorType: 0 };
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length < 33 || !sig.every((b, i) => bytes[i] === b)) {
    issues.add('header');
    return result;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: { type: string; data: Uint8Array }[] = [];
  let offset = 8;
  let ended = false;
  while (offset + 8 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
    if (!/^[A-Za-z]{4}$/.test(type) || length > 0x7fffffff || offset + 12 + length > bytes.length) {
      issues.add('chunk-structure');
      break;
    }
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    if (view.getUint32(offset + 8 + length) !== crc32(bytes.subarray(offset + 4, offset + 8 + length))) issues.add('crc');
    chunks.push({ type, data });
    offset += 12 + length;
    if (type === 'IEND') {
      ended = true;
      break;
    }
  }
  if (!ended) issues.add('chunk-structure');
  // IHDR must come first; PIL also finds it later, so a misplaced one is a chunk-order defect.
  const ihdr = chunks.find((c) => c.type === 'IHDR');
  if (ihdr && chunks[0] !== ihdr) issues.add('chunk-order');
  if (!ihdr || ihdr.data.length !== 13) {
    issues.add('header');
    return result;
  }
  const h = new DataView(ihdr.data.buffer, ihdr.data.byteOffset, 13);
  const width = h.getUint32(0);
  const height = h.getUint32(4);
  const [bitDepth, colorType, compression, filterMethod, interlace] = ihdr.data.subarray(8);
  result.bitDepth = bitDepth;
  result.colorType = colorType;
  const depths: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
  if (compression || filterMethod) issues.add('method');
  if (width === 0 || height === 0 || !(colorType in depths) || !depths[colorType].includes(bitDepth) || interlace > 1) {
    issues.add('header');
    return result;
  }
  if (width * height > maxPixels) {
    issues.add('over-cap');
    return result;
  }
  const idatRuns = chunks.map((c) => c.type === 'IDAT').reduce((runs, isIdat, i, all) => runs + (isIdat && !all[i - 1] ? 1 : 0), 0);
  const firstIdat = chunks.findIndex((c) => c.type === 'IDAT');
  const at = (type: string) => chunks.findIndex((c) => c.type === type);
  if (idatRuns !== 1 || chunks.filter((c) => c.type === 'IHDR').length > 1) issues.add('chunk-order');
  // PLTE matters to palette images only (others may carry a suggested palette, which readers ignore).
  const plte = chunks.filter((c) => c.type === 'PLTE');
  if (colorType === 3) {
    if (plte.length !== 1 || at('PLTE') > firstIdat) issues.add('chunk-order');
    if (plte.length) {
      result.paletteEntries = Math.floor(plte[0].data.length / 3);
      if (plte[0].data.length % 3 || plte[0].data.length === 0 || plte[0].data.length > 768) issues.add('chunk-order');
    }
  }
  const trns = chunks.filter((c) => c.type === 'tRNS');
  if (trns.length && colorType !== 4 && colorType !== 6) {
    const need = colorType === 0 ? 2 : colorType === 2 ? 6 : 0;
    if (trns.length > 1 || at('tRNS') > firstIdat || (colorType === 3 && at('tRNS') < at('PLTE')) || trns[0].data.length < need) {
      issues.add('transparency');
    }
  }
  if (chunks.some((c) => /^[A-Z]/.test(c.type) && !['IHDR', 'PLTE', 'IDAT', 'IEND'].includes(c.type))) issues.add('critical-chunk');
  const fieldBytes: Record<string, number> = { gAMA: 4, pHYs: 8, sRGB: 1 };
  if (chunks.some((c) => c.data.length < (fieldBytes[c.type] ?? 0))) issues.add('metadata');
  // The image data: the IDAT chunks in file order, one zlib stream of exactly the size the header implies.
  const idat = Buffer.concat(chunks.filter((c) => c.type === 'IDAT').map((c) => c.data));
  const bitsPerPixel = PNG_CHANNELS[colorType] * bitDepth;
  const passes = interlace
    ? [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]].map(([x0, y0, dx, dy]) => [Math.ceil(Math.max(0, width - x0) / dx), Math.ceil(Math.max(0, height - y0) / dy)])
    : [[width, height]];
  const rows: number[] = []; // byte length of each scanline, filter byte included
  for (const [cols, n] of passes) if (cols > 0) for (let r = 0; r < n; r++) rows.push(1 + Math.ceil((cols * bitsPerPixel) / 8));
  const expected = rows.reduce((a, b) => a + b, 0);
  let raw: Buffer | null = null;
  try {
    raw = inflateSync(idat, { maxOutputLength: expected + 1 });
  } catch (err) {
    issues.add((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' ? 'data-length' : 'zlib');
  }
  if (raw && raw.length !== expected) issues.add('data-length');
  if (raw) {
    let p = 0;
    for (const len of rows) {
      if (p >= raw.length) break;
      if (raw[p] > 4) issues.add('filter-type');
      p += len;
    }
  }
  return result;
}

/**
 * Compares a PNG decoded with `background: 'ignore'` against PIL's pixels. PNG pixels must match exactly, with
 * one documented exception: PIL keeps only the high byte of 16-bit colour samples (its RGB/RGBA/LA modes are
 * 8-bit), while Chimera rounds (round(v * 255 / 65535)); for those the rule is that Chimera's value is what
 * rounding gives for some 16-bit value with PIL's high byte: one of round(256 * hi / 257),
 * round((256 * hi + 255) / 257). 16-bit gray reaches PIL at full precision ("I16") and must match exactly.
 * Returns a description of the first mismatch, or null.
 */
export function comparePngWithPil(image: RgbImage, pil: { mode: string; pixels: Uint8Array }, bitDepth: number): string | null {
  const n = image.width * image.height;
  const channels = { L: 1, LA: 2, RGB: 3, RGBA: 4, I16: 0 }[pil.mode];
  if (channels === undefined) return `PIL mode ${pil.mode} is not compared`;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const got = image.data[3 * i + c];
      let ok: boolean;
      let want: string;
      if (pil.mode === 'I16') {
        const v = (pil.pixels[2 * i] << 8) | pil.pixels[2 * i + 1];
        const exact = Math.round((v * 255) / 65535);
        ok = got === exact;
        want = String(exact);
      } else {
        const hi = pil.pixels[i * channels + (channels >= 3 ? c : 0)];
        if (bitDepth === 16) {
          const lo = Math.round((256 * hi) / 257);
          const up = Math.round((256 * hi + 255) / 257);
          ok = got >= lo && got <= up;
          want = `${lo}..${up}`;
        } else {
          ok = got === hi;
          want = String(hi);
        }
      }
      if (!ok) return `pixel ${i % image.width},${Math.floor(i / image.width)} channel ${c}: Chimera ${got}, PIL ${want} (mode ${pil.mode})`;
    }
  }
  return null;
}

/** PIL's alpha composite on white, for comparing Chimera's default background (8-bit alpha only). */
export function pilOnWhite(pil: { mode: string; pixels: Uint8Array }, pixels: number): Uint8Array | null {
  const channels = { LA: 2, RGBA: 4 }[pil.mode];
  if (!channels) return null;
  const out = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    const a = pil.pixels[i * channels + channels - 1];
    for (let c = 0; c < 3; c++) {
      const v = pil.pixels[i * channels + (channels === 4 ? c : 0)];
      out[3 * i + c] = Math.round((v * a + 255 * (255 - a)) / 255);
    }
  }
  return out;
}
