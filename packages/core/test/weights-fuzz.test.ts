// Fuzzing the safetensors reader with mutated and truncated files.
//
// Oracle: an independent validator (below, written from the format description, not from src/weights) gives
// a verdict for every byte string. The reader must (1) throw SafetensorsError exactly when the verdict is
// "invalid", with a message naming the source, and never any other exception type; (2) when the verdict is
// "valid", return exactly the header's tensor names and metadata, each tensor with the header's shape, the
// documented TensorFlow.js dtype, and values equal to the reference decoding of its own byte range (integers
// outside int32 make the verdict "invalid", so a narrowed value is a failure, not a pass); (3) finish each case
// within 5 s and allocate no more tensor memory than 4 bytes per file byte.
//
// Case counts come from fuzzRuns (CI's reduced count; `npm run fuzz` runs 10,000 each).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fc from 'fast-check';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { decodeSafetensors, loadSafetensors, SafetensorsError, type SafetensorsContents } from '../src/weights/index';
import { fuzzRuns, fuzzTimeout, setupTestBackend } from '../src/testing/index';
import { assemble, DECODED_DTYPE, ELEMENT_BYTES, referenceDecode } from './weights-helpers';

const DTYPES = Object.keys(ELEMENT_BYTES);
const MAX_HEADER = 100_000_000;
/** Deepest JSON nesting the format allows a header (documented in docs/weights.md). */
const MAX_NESTING = 128;
/** A case slower than this counts as a hang. */
const CASE_TIME_LIMIT_MS = 5000;
const BYTE_RUNS = fuzzRuns(2000);
const FILE_RUNS = fuzzRuns(300);

type Verdict =
  | { valid: true; names: string[]; metadata: Record<string, string>; spans: Map<string, Span>; dataStart: number }
  | { valid: false; reason: string };
interface Span {
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The independent validator. */
function verdict(bytes: Uint8Array): Verdict {
  const invalid = (reason: string): Verdict => ({ valid: false, reason });
  if (bytes.byteLength < 8) return invalid('short');
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER) || n < 2n || 8n + n > BigInt(bytes.byteLength)) return invalid('length');
  const headerEnd = 8 + Number(n);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, headerEnd));
  } catch {
    return invalid('utf8');
  }
  if (text[0] !== '{') return invalid('not {');
  if (nestingDepth(text) > MAX_NESTING) return invalid('nesting');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch {
    return invalid('json');
  }
  if (!isObject(header)) return invalid('not object');
  const dataLength = bytes.byteLength - headerEnd;
  let metadata: Record<string, string> = {};
  const spans = new Map<string, Span>();
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isObject(value) || !Object.values(value).every((v) => typeof v === 'string')) return invalid('metadata');
      metadata = value as Record<string, string>;
      continue;
    }
    if (!isObject(value)) return invalid('entry');
    const { dtype, shape, data_offsets: offsets } = value;
    if (typeof dtype !== 'string' || !DTYPES.includes(dtype)) return invalid('dtype');
    if (!Array.isArray(shape) || !shape.every(isCount)) return invalid('shape');
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) return invalid('offsets');
    const [begin, end] = offsets as number[];
    if (begin! > end! || end! > dataLength) return invalid('offset range');
    const bytesNeeded = (shape as number[]).reduce((p, d) => p * BigInt(d), 1n) * BigInt(ELEMENT_BYTES[dtype]!);
    if (bytesNeeded !== BigInt(end! - begin!)) return invalid('size');
    spans.set(name, { dtype, shape: shape as number[], begin: begin!, end: end! });
  }
  const sorted = [...spans.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let position = 0;
  for (const s of sorted) {
    if (s.begin !== position) return invalid('tiling');
    position = s.end;
  }
  if (position !== dataLength) return invalid('coverage');
  for (const s of spans.values()) {
    if (referenceDecode(s.dtype, bytes.subarray(headerEnd + s.begin, headerEnd + s.end)) === 'out-of-range') {
      return invalid('int range');
    }
  }
  return { valid: true, names: [...spans.keys()], metadata, spans, dataStart: headerEnd };
}

/** Depth of the text's brackets once every string literal is blanked out (a regex, unlike the reader's byte scan). */
function nestingDepth(text: string): number {
  const bare = text.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  let depth = 0;
  let deepest = 0;
  for (const c of bare) {
    if (c === '{' || c === '[') deepest = Math.max(deepest, ++depth);
    else if (c === '}' || c === ']') depth--;
  }
  return deepest;
}

const stats = { accepted: 0, rejected: 0, cases: 0 };
const reasons = new Map<string, number>();

function checkOutcome(
  bytes: Uint8Array,
  outcome: { result?: SafetensorsContents; error?: unknown },
  elapsedMs: number,
  source: string,
) {
  stats.cases++;
  expect(elapsedMs).toBeLessThan(CASE_TIME_LIMIT_MS);
  const expected = verdict(bytes);
  if (!expected.valid) reasons.set(expected.reason, (reasons.get(expected.reason) ?? 0) + 1);
  if (outcome.error !== undefined) {
    if (!(outcome.error instanceof SafetensorsError)) throw outcome.error; // surfaces the foreign exception
    expect({ rejected: true, validator: expected.valid ? 'valid' : 'invalid' }).toEqual({ rejected: true, validator: 'invalid' });
    expect(outcome.error.message).toContain(source);
    stats.rejected++;
    return;
  }
  if (!expected.valid) throw new Error(`the reader accepted a file the validator rejects (${expected.reason})`);
  const { tensors, metadata } = outcome.result!;
  try {
    expect(metadata).toEqual(expected.metadata);
    expect(Object.keys(tensors).sort()).toEqual([...expected.names].sort());
    let elements = 0;
    for (const [name, span] of expected.spans) {
      const t = tensors[name]!;
      expect([name, t.shape, t.dtype]).toEqual([name, span.shape, DECODED_DTYPE[span.dtype]]);
      const want = referenceDecode(span.dtype, bytes.subarray(expected.dataStart + span.begin, expected.dataStart + span.end));
      const got = Array.from(t.dataSync() as ArrayLike<number>);
      expect(got.length).toBe((want as number[]).length);
      for (let i = 0; i < got.length; i++) {
        if (!Object.is(got[i], (want as number[])[i])) {
          throw new Error(`${name}[${i}] (${span.dtype}): read ${got[i]}, bytes say ${(want as number[])[i]}`);
        }
      }
      elements += t.size;
    }
    expect(elements * 4).toBeLessThanOrEqual(4 * bytes.byteLength);
    stats.accepted++;
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}

// ---- generators ----

interface BaseEntry {
  name: string;
  dtype: string;
  shape: number[];
  fill: 'small' | 'random' | 'edge';
  seed: number;
}

const entryArb: fc.Arbitrary<BaseEntry> = fc.record({
  name: fc.oneof(fc.string({ maxLength: 6 }), fc.string({ unit: 'grapheme', maxLength: 4 }), fc.constantFrom('w', 'a.b', '__proto__', 'x y')),
  dtype: fc.constantFrom(...DTYPES),
  shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
  fill: fc.constantFrom('small' as const, 'random' as const, 'edge' as const),
  seed: fc.integer(),
});

const baseArb = fc.record({
  entries: fc.uniqueArray(entryArb, { selector: (e) => e.name, maxLength: 5 }).map((es) => es.filter((e) => e.name !== '__metadata__')),
  metadata: fc.option(fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }), { nil: undefined }),
  pad: fc.boolean(),
});

/**
 * Bit patterns at the edges of int32 as 64-bit little-endian words (also read as 32-bit halves): random bytes
 * almost never land on them, and they are where a narrowing check goes wrong (2^64 - 1 read as -1).
 */
const EDGE_VALUES = [
  0n, 1n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 63n - 1n, 2n ** 63n,
  2n ** 64n - 2n ** 31n - 1n, 2n ** 64n - 2n ** 31n, 2n ** 64n - 2n ** 31n + 1n, 2n ** 64n - 1n,
];

function entryBytes(e: BaseEntry): Uint8Array {
  const size = ELEMENT_BYTES[e.dtype]!;
  const count = e.shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(count * size);
  let state = e.seed >>> 0;
  const edge = new DataView(new ArrayBuffer(8));
  for (let i = 0; i < count; i++) {
    if (e.fill === 'small') out[i * size] = i % 3; // fits every integer type; tiny floats
    else if (e.fill === 'edge') {
      edge.setBigUint64(0, EDGE_VALUES[(e.seed >>> 0) % EDGE_VALUES.length]!, true);
      for (let b = 0; b < size; b++) out[i * size + b] = edge.getUint8(b);
    } else {
      for (let b = 0; b < size; b++) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        out[i * size + b] = state >>> 24;
      }
    }
  }
  return out;
}

interface Base {
  header: Record<string, unknown>;
  data: Uint8Array;
  pad: boolean;
}

function buildBase(b: { entries: BaseEntry[]; metadata?: Record<string, string>; pad: boolean }): Base {
  const header: Record<string, unknown> = {};
  if (b.metadata) header.__metadata__ = b.metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const e of b.entries) {
    const bytes = entryBytes(e);
    Object.defineProperty(header, e.name, {
      value: { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + bytes.byteLength] },
      enumerable: true,
      writable: true,
      configurable: true,
    });
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  const data = new Uint8Array(offset);
  let at = 0;
  for (const c of chunks) {
    data.set(c, at);
    at += c.byteLength;
  }
  return { header, data, pad: b.pad };
}

function serialize(base: Base, headerText?: string): Uint8Array {
  let text = headerText ?? JSON.stringify(base.header);
  if (base.pad) text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  return assemble(new TextEncoder().encode(text), base.data);
}

const weird = fc.oneof(
  fc.integer({ min: -3, max: 9 }),
  fc.constantFrom(2 ** 53, 2 ** 31, 0.5, 1.5, 1e-9, -0, -1, '3', null, true, [], {}),
);

type Edit =
  | { op: 'dtype'; value: unknown }
  | { op: 'dim'; index: number; value: unknown }
  | { op: 'push-dim'; value: unknown }
  | { op: 'pop-dim' }
  | { op: 'offset'; index: number; delta: number }
  | { op: 'offset-set'; index: number; value: unknown }
  | { op: 'swap-offsets' }
  | { op: 'offsets-arity'; value: unknown }
  | { op: 'delete' }
  | { op: 'duplicate-span' }
  | { op: 'entry'; value: unknown }
  | { op: 'metadata'; value: unknown }
  | { op: 'shadow' }
  | { op: 'nest'; where: 'entry' | 'metadata' | 'root' | 'shadow'; depth: number; brackets: boolean[] };

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ op: fc.constant('dtype' as const), value: fc.oneof(fc.constantFrom(...DTYPES), fc.constantFrom('F128', 'f32', '', 5)) }),
  fc.record({ op: fc.constant('dim' as const), index: fc.nat(3), value: weird }),
  fc.record({ op: fc.constant('dim' as const), index: fc.nat(3), value: weird }),
  fc.record({ op: fc.constant('push-dim' as const), value: weird }),
  fc.record({ op: fc.constant('push-dim' as const), value: weird }),
  fc.record({ op: fc.constant('pop-dim' as const) }),
  fc.record({ op: fc.constant('offset' as const), index: fc.nat(1), delta: fc.integer({ min: -9, max: 9 }) }),
  fc.record({ op: fc.constant('offset-set' as const), index: fc.nat(1), value: weird }),
  fc.record({ op: fc.constant('swap-offsets' as const) }),
  fc.record({ op: fc.constant('offsets-arity' as const), value: fc.array(fc.nat(20), { maxLength: 4 }) }),
  fc.record({ op: fc.constant('delete' as const) }),
  fc.record({ op: fc.constant('duplicate-span' as const) }),
  fc.record({ op: fc.constant('entry' as const), value: fc.jsonValue({ maxDepth: 2 }) }),
  fc.record({ op: fc.constant('metadata' as const), value: fc.jsonValue({ maxDepth: 2 }) }),
  fc.record({ op: fc.constant('shadow' as const) }),
  fc.record({
    op: fc.constant('nest' as const),
    where: fc.constantFrom('entry' as const, 'metadata' as const, 'root' as const, 'shadow' as const),
    // Around the limit (counting the levels above the value) and far past it.
    depth: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.integer({ min: MAX_NESTING - 4, max: MAX_NESTING + 2 }), fc.constant(5000)),
    brackets: fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
  }),
);

/**
 * JSON text nested `depth` levels, arrays or objects by `brackets` (cycled), with a string full of brackets and
 * escaped quotes inside, which must not count. Built as text: JSON.stringify itself overflows at 5000 levels.
 */
function nestedText(depth: number, brackets: boolean[]): string {
  let open = '';
  let close = '';
  for (let level = 0; level < depth; level++) {
    const array = brackets[level % brackets.length]!;
    open += array ? '[' : '{"k":';
    close = (array ? ']' : '}') + close;
  }
  return `${open}${String.raw`"[{\\\"]}\\"`}${close}`;
}

const NEST_VALUE = '\u0000nest\u0000';
const NEST_MARK = JSON.stringify(NEST_VALUE); // the text JSON.stringify writes for it, replaced afterwards

/** Applies a JSON-level edit to one entry (picked by `target`) and returns the new header text. */
function applyEdit(base: Base, edit: Edit, target: number): string {
  const header = structuredClone(base.header) as Record<string, Record<string, unknown>>;
  const names = Object.keys(header).filter((n) => n !== '__metadata__');
  if (edit.op === 'metadata') {
    header.__metadata__ = edit.value as Record<string, unknown>;
    return JSON.stringify(header);
  }
  if (edit.op === 'nest') return applyNesting(header, names, edit, target);
  if (names.length === 0) return JSON.stringify({ ...header, extra: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } });
  const name = names[target % names.length]!;
  const entry = header[name]!;
  const shape = entry.shape as unknown[];
  const offsets = entry.data_offsets as unknown[];
  switch (edit.op) {
    case 'dtype': entry.dtype = edit.value; break;
    case 'dim': if (shape.length) shape[edit.index % shape.length] = edit.value; else shape.push(edit.value); break;
    case 'push-dim': shape.push(edit.value); break;
    case 'pop-dim': shape.pop(); break;
    case 'offset': offsets[edit.index] = (offsets[edit.index] as number) + edit.delta; break;
    case 'offset-set': offsets[edit.index] = edit.value; break;
    case 'swap-offsets': offsets.reverse(); break;
    case 'offsets-arity': entry.data_offsets = edit.value; break;
    case 'delete': delete header[name]; break;
    case 'duplicate-span': header[`${name}#copy`] = structuredClone(entry); break;
    case 'entry': header[name] = edit.value as Record<string, unknown>; break;
    case 'shadow': {
      // A duplicated JSON key: JSON.parse keeps the last, so the first entry's bytes become a gap.
      const text = JSON.stringify(header);
      const extra = JSON.stringify({ [name]: { ...entry } }).slice(1, -1);
      return `{${extra},${text.slice(1)}`;
    }
  }
  return JSON.stringify(header);
}

/** Puts a deeply nested value into the header: an entry's extra key, the metadata, the root, or a shadowed key. */
function applyNesting(
  header: Record<string, Record<string, unknown>>,
  names: string[],
  edit: Extract<Edit, { op: 'nest' }>,
  target: number,
): string {
  const mark = NEST_VALUE;
  const name = names.length ? names[target % names.length]! : undefined;
  let text: string;
  if (edit.where === 'entry' && name) {
    header[name]!.extra = mark; // extra keys in an entry are allowed (and ignored) by the format
    text = JSON.stringify(header);
  } else if (edit.where === 'metadata') {
    header.__metadata__ = { deep: mark };
    text = JSON.stringify(header);
  } else if (edit.where === 'shadow' && name) {
    // A duplicated key whose first value is deep: JSON.parse keeps the shallow last one, the text is still deep.
    text = `{${JSON.stringify(name)}:${NEST_MARK},${JSON.stringify(header).slice(1)}`;
  } else {
    text = JSON.stringify({ ...header, deep: mark });
  }
  return text.replace(NEST_MARK, nestedText(edit.depth, edit.brackets));
}

type Mutation =
  | { kind: 'none' }
  | { kind: 'flip'; positions: number[]; masks: number[] }
  | { kind: 'truncate'; fraction: number }
  | { kind: 'append'; bytes: Uint8Array }
  | { kind: 'length'; value: bigint }
  | { kind: 'length-delta'; delta: number }
  | { kind: 'edit'; edit: Edit; target: number }
  | { kind: 'edit+flip'; edit: Edit; target: number; position: number; mask: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('flip' as const),
      positions: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
      masks: fc.array(fc.integer({ min: 1, max: 255 }), { minLength: 4, maxLength: 4 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), fraction: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('length' as const), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('length-delta' as const), delta: fc.integer({ min: -12, max: 12 }) }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('edit' as const), edit: editArb, target: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('edit+flip' as const),
      edit: editArb,
      target: fc.nat(),
      position: fc.nat(),
      mask: fc.integer({ min: 1, max: 255 }),
    }),
  },
);

function mutate(base: Base, m: Mutation): Uint8Array {
  const bytes = m.kind === 'edit' || m.kind === 'edit+flip' ? serialize(base, applyEdit(base, m.edit, m.target)) : serialize(base);
  switch (m.kind) {
    case 'none':
    case 'edit':
      return bytes;
    case 'edit+flip':
      bytes[m.position % bytes.byteLength] ^= m.mask;
      return bytes;
    case 'flip':
      m.positions.forEach((p, i) => (bytes[p % bytes.byteLength] ^= m.masks[i]!));
      return bytes;
    case 'truncate':
      return bytes.slice(0, Math.floor(m.fraction * bytes.byteLength));
    case 'append': {
      const out = new Uint8Array(bytes.byteLength + m.bytes.byteLength);
      out.set(bytes);
      out.set(m.bytes, bytes.byteLength);
      return out;
    }
    case 'length':
      new DataView(bytes.buffer).setBigUint64(0, m.value, true);
      return bytes;
    case 'length-delta': {
      const view = new DataView(bytes.buffer);
      const n = view.getBigUint64(0, true) + BigInt(m.delta);
      view.setBigUint64(0, n < 0n ? 0n : n, true);
      return bytes;
    }
  }
}

describe('safetensors reader fuzz', () => {
  let tmp: string;
  beforeAll(async () => {
    await setupTestBackend('cpu');
    tmp = await fs.mkdtemp(nodePath.join(os.tmpdir(), 'chimera-weights-fuzz-'));
  });
  afterAll(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
    // One line for the full run's report: how the cases split between the two outcomes.
    console.info(
      `safetensors fuzz: ${stats.cases} cases, ${stats.accepted} read, ${stats.rejected} rejected; the validator's reasons: ` +
        `${[...reasons].map(([r, n]) => `${r} ${n}`).join(', ')}`,
    );
  });

  it(
    `rejects with SafetensorsError exactly the invalid byte strings, and reads the valid ones exactly (${BYTE_RUNS} cases)`,
    () => {
      const before = { ...stats };
      reasons.clear();
      let n = 0;
      fc.assert(
        fc.property(baseArb, mutationArb, (b, m) => {
          const bytes = mutate(buildBase(b), m);
          const source = `case-${n++}.safetensors`;
          const start = performance.now();
          let outcome: { result?: SafetensorsContents; error?: unknown };
          try {
            outcome = { result: decodeSafetensors(bytes, { source }) };
          } catch (error) {
            outcome = { error };
          }
          checkOutcome(bytes, outcome, performance.now() - start, source);
        }),
        { numRuns: BYTE_RUNS },
      );
      // Both outcomes must be exercised in bulk, and the edge cases reached, or the oracle proves little.
      expect(stats.accepted - before.accepted).toBeGreaterThan(BYTE_RUNS * 0.075);
      expect(stats.rejected - before.rejected).toBeGreaterThan(BYTE_RUNS * 0.3);
      expect([reasons.get('nesting') ?? 0, reasons.get('int range') ?? 0].every((count) => count > 0)).toBe(true);
    },
    fuzzTimeout(BYTE_RUNS, 20),
  );

  it(
    `gives the same verdicts through files, naming the file (${FILE_RUNS} cases)`,
    async () => {
      const path = nodePath.join(tmp, 'case.safetensors');
      await fc.assert(
        fc.asyncProperty(baseArb, mutationArb, async (b, m) => {
          const bytes = mutate(buildBase(b), m);
          await fs.writeFile(path, bytes);
          const start = performance.now();
          let timer: NodeJS.Timeout | undefined;
          const timeout = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error('loadSafetensors hung')), CASE_TIME_LIMIT_MS);
          });
          let outcome: { result?: SafetensorsContents; error?: unknown };
          try {
            outcome = { result: await Promise.race([loadSafetensors(path), timeout]) };
          } catch (error) {
            outcome = { error };
          } finally {
            clearTimeout(timer);
          }
          checkOutcome(bytes, outcome, performance.now() - start, path);
        }),
        { numRuns: FILE_RUNS },
      );
    },
    fuzzTimeout(FILE_RUNS, 40),
  );
});
