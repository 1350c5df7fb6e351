// Mutations of JSON files for the config.json and tokenizer.json fuzz targets: structure-aware edits (wrong types,
// huge and negative numbers, missing fields, prototype keys, deep nesting, duplicated keys), edits that must not
// change what the file means (key order, formatting, number spelling, unknown keys), and byte-level damage.
import * as fc from 'fast-check';

export type Path = (string | number)[];

/** Every path to a value inside `value` (own keys, array indices), the root excluded, at most `limit` levels deep. */
export function pathsOf(value: unknown, limit = 6, prefix: Path = [], out: Path[] = []): Path[] {
  if (prefix.length >= limit || value === null || typeof value !== 'object') return out;
  const keys: (string | number)[] = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  for (const key of keys) {
    const path = [...prefix, key];
    out.push(path);
    pathsOf((value as Record<string | number, unknown>)[key], limit, path, out);
  }
  return out;
}

/** JSON.parse of a literal: keys such as "__proto__" become own keys, as they do when a file is read. */
const own = (text: string): unknown => JSON.parse(text);

/** Values a hostile or broken file puts where a field should be. */
export const hostileValueArb: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom<unknown>(
      null, true, false, 0, -1, -0, 0.5, 1.5, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e308, -1e308, 5e7,
      1e5, 1e-300, '', '0', '64', 'true', 'null', '__proto__', 'constructor', [], {}, [1], [1, 2, 3], [[]],
      own('{"__proto__": {"polluted": 1}}'), own('{"constructor": {"prototype": {"polluted": 1}}}'), 'x'.repeat(1000),
    ),
  },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
);

/** Keys that no reader uses, prototype members among them: adding them must change nothing. */
export const UNKNOWN_KEYS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'x_unknown'];

export type Edit =
  | { op: 'set'; at: number; value: unknown }
  | { op: 'scale'; at: number; factor: number }
  | { op: 'delete'; at: number }
  | { op: 'add-key'; at: number; key: string; value: unknown }
  | { op: 'nest'; at: number; depth: number }
  | { op: 'duplicate-key'; at: number; value: unknown };

export const editArb: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: hostileValueArb }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('scale' as const), at: fc.nat(), factor: fc.constantFrom(-1, 0, 2, 1000, 1e5, 2 ** 31, 1e300, 0.5) }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), at: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('add-key' as const),
      at: fc.nat(),
      key: fc.oneof(fc.constantFrom(...UNKNOWN_KEYS), fc.string({ maxLength: 6 })),
      value: hostileValueArb,
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('nest' as const), at: fc.nat(), depth: fc.constantFrom(3, 127, 129, 5000) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('duplicate-key' as const), at: fc.nat(), value: hostileValueArb }) },
);

/** Edits that keep the file's meaning: the reader must give exactly what it gives for the original. */
export type PreservingEdit =
  | { op: 'reorder'; seed: number }
  | { op: 'indent'; indent: number }
  | { op: 'number-spelling'; seed: number }
  | { op: 'unknown-key'; at: number; key: string; value: unknown };

export const preservingEditArb = (unknownKeyArb: fc.Arbitrary<PreservingEdit>): fc.Arbitrary<PreservingEdit> =>
  fc.oneof(
    fc.record({ op: fc.constant('reorder' as const), seed: fc.integer() }),
    fc.record({ op: fc.constant('indent' as const), indent: fc.constantFrom(0, 1, 2, 4) }),
    fc.record({ op: fc.constant('number-spelling' as const), seed: fc.integer() }),
    unknownKeyArb,
  );

export type ByteEdit =
  | { op: 'flip'; positions: number[]; masks: number[] }
  | { op: 'truncate'; fraction: number }
  | { op: 'insert'; position: number; bytes: Uint8Array };

export const byteEditArb: fc.Arbitrary<ByteEdit> = fc.oneof(
  fc.record({
    op: fc.constant('flip' as const),
    positions: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
    masks: fc.array(fc.integer({ min: 1, max: 255 }), { minLength: 4, maxLength: 4 }),
  }),
  fc.record({ op: fc.constant('truncate' as const), fraction: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }) }),
  fc.record({ op: fc.constant('insert' as const), position: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
);

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function parentOf(root: unknown, path: Path): { parent: Record<string | number, unknown>; key: string | number } {
  let parent = root as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
  return { parent, key: path[path.length - 1]! };
}

/** Sets an own data property (plain assignment to "__proto__" would set the prototype instead). */
function setOwn(target: Record<string | number, unknown>, key: string | number, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Text of JSON nested `depth` levels, alternating arrays and objects, with bracket characters in a string inside. */
export function nestedText(depth: number): string {
  let open = '';
  let close = '';
  for (let level = 0; level < depth; level++) {
    open += level % 2 ? '{"k":' : '[';
    close = (level % 2 ? '}' : ']') + close;
  }
  return `${open}"]}[{\\""${close}`;
}

/**
 * Applies structure-aware edits to a JSON document and returns the file text. Deep nesting and duplicated keys
 * are spliced into the text (JSON.stringify cannot write either).
 */
export function applyEdits(base: unknown, edits: readonly Edit[]): string {
  const doc = clone(base);
  const splices: [string, string][] = [];
  edits.forEach((edit, n) => {
    const paths = pathsOf(doc);
    if (paths.length === 0) return;
    const path = paths[edit.at % paths.length]!;
    const { parent, key } = parentOf(doc, path);
    const marker = `\u0000splice${n}\u0000`;
    switch (edit.op) {
      case 'set':
        setOwn(parent, key, clone(edit.value ?? null));
        break;
      case 'scale': {
        const v = parent[key];
        if (typeof v === 'number') setOwn(parent, key, v * edit.factor);
        else setOwn(parent, key, edit.factor);
        break;
      }
      case 'delete':
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete parent[key];
        break;
      case 'add-key': {
        const target = parent[key];
        const object = target !== null && typeof target === 'object' && !Array.isArray(target) ? (target as Record<string, unknown>) : parent;
        if (!Array.isArray(object)) setOwn(object, edit.key, clone(edit.value ?? null));
        break;
      }
      case 'nest':
        setOwn(parent, key, marker);
        splices.push([JSON.stringify(marker), nestedText(edit.depth)]);
        break;
      case 'duplicate-key': {
        if (Array.isArray(parent)) break;
        // The first copy carries the hostile value; JSON.parse keeps the last, so the file reads as before.
        const original = JSON.stringify(parent[key] ?? null);
        setOwn(parent, key, marker);
        splices.push([
          `${JSON.stringify(String(key))}:${JSON.stringify(marker)}`,
          `${JSON.stringify(String(key))}:${JSON.stringify(edit.value ?? null)},${JSON.stringify(String(key))}:${original}`,
        ]);
        break;
      }
    }
  });
  let text = JSON.stringify(doc);
  for (const [from, to] of splices) text = text.split(from).join(to);
  return text;
}

/** A deterministic shuffle (the fuzz case's seed decides it). */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let state = seed >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function reorder(value: unknown, seed: number): unknown {
  if (Array.isArray(value)) return value.map((v, i) => reorder(v, seed + i));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key of shuffled(Object.keys(value), seed)) setOwn(out, key, reorder((value as Record<string, unknown>)[key], seed + 1));
  return out;
}

/**
 * Applies an edit that must not change what the file means. `isMap` marks objects whose keys are data (a
 * vocabulary, a table of special tokens): an unknown key there would be a new entry, so none is added.
 */
export function applyPreserving(base: unknown, edit: PreservingEdit, isMap: (path: Path) => boolean = () => false): string {
  switch (edit.op) {
    case 'reorder':
      return JSON.stringify(reorder(base, edit.seed));
    case 'indent':
      return JSON.stringify(base, null, edit.indent);
    case 'number-spelling': {
      // 64 -> 64.0, 64e0 or 640e-1: the same number, spelled as other writers (Python's json) spell it.
      let n = 0;
      return serialize(base, (value) => {
        if (!Number.isSafeInteger(value) || Object.is(value, -0)) return JSON.stringify(value);
        const spelling = (edit.seed + n++) % 3;
        return spelling === 0 ? `${value}.0` : spelling === 1 ? `${value}e0` : `${value * 10}e-1`;
      });
    }
    case 'unknown-key': {
      const doc = clone(base);
      const objects = [[] as Path, ...pathsOf(doc)].filter((p) => {
        const v = p.length ? parentOf(doc, p).parent[p[p.length - 1]!] : doc;
        return v !== null && typeof v === 'object' && !Array.isArray(v) && !isMap(p);
      });
      const path = objects[edit.at % objects.length]!;
      const target = (path.length ? parentOf(doc, path).parent[path[path.length - 1]!] : doc) as Record<string, unknown>;
      setOwn(target, edit.key, clone(edit.value ?? null));
      return JSON.stringify(doc);
    }
  }
}

/** JSON.stringify with integers written by `number` (strings and keys untouched). */
function serialize(value: unknown, number: (value: number) => string): string {
  if (typeof value === 'number') return number(value);
  if (Array.isArray(value)) return `[${value.map((v) => serialize(v, number)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value).map((k) => `${JSON.stringify(k)}:${serialize((value as Record<string, unknown>)[k], number)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Byte-level damage to a file. */
export function applyByteEdit(text: string, edit: ByteEdit): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  switch (edit.op) {
    case 'flip':
      edit.positions.forEach((p, i) => (bytes[p % bytes.length] ^= edit.masks[i]!));
      return bytes;
    case 'truncate':
      return bytes.slice(0, Math.floor(edit.fraction * bytes.length));
    case 'insert': {
      const at = edit.position % (bytes.length + 1);
      const out = new Uint8Array(bytes.length + edit.bytes.length);
      out.set(bytes.subarray(0, at));
      out.set(edit.bytes, at);
      out.set(bytes.subarray(at), at + edit.bytes.length);
      return out;
    }
  }
}

/** Runs `call` and reports how it ended: a value, a thrown value, and the wall time. */
export async function outcomeOf<T>(call: () => Promise<T> | T): Promise<{ value?: T; error?: unknown; ms: number }> {
  const start = performance.now();
  try {
    const value = await call();
    return { value, ms: performance.now() - start };
  } catch (error) {
    return { error, ms: performance.now() - start };
  }
}

/**
 * The error half of every oracle: a thrown value must be an Error whose message names `file`; anything else (a
 * string, a bare RangeError naming no file) is reported with the input.
 */
export function checkThrown(error: unknown, file: string, input: string): void {
  if (!(error instanceof Error)) throw new Error(`threw a non-Error ${String(error)} for input ${input.slice(0, 300)}`);
  if (!error.message.includes(file)) {
    throw new Error(`the error does not name ${file}: ${error.name}: ${error.message.slice(0, 400)}\ninput: ${input.slice(0, 300)}`);
  }
}
