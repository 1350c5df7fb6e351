/**
 * The safetensors header: parsing and validating it before any tensor byte is touched, and serializing one.
 * Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data section; each entry's
 * `data_offsets` are relative to the start of the data section.
 *
 * Validation follows huggingface/safetensors, including its strictest rule: the tensors must tile the data
 * section exactly (sorted by offset, the first starts at 0, each starts where the previous ends, the last ends
 * at the end of the file). So there are no gaps, no overlaps and no trailing bytes: any byte the header does
 * not explain is an error, which also catches duplicated JSON keys (the shadowed entry leaves a gap).
 */
import { DTYPE_BYTES, isSafetensorsDtype, SAFETENSORS_DTYPES, type SafetensorsDtype } from './dtypes';

/** Any problem with safetensors bytes or files: corrupt, truncated, unsupported or not encodable. */
export class SafetensorsError extends Error {
  /** Always 'SafetensorsError'. */
  override name = 'SafetensorsError';
}

/** Headers above this are refused before allocating (HF's own reader uses the same limit). */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * Deepest JSON nesting a header may have. A valid header needs 3 levels (header, entry, shape); 128 is the recursion
 * limit of serde_json, HF's JSON parser, so no header HF's reader accepts is refused here.
 */
export const MAX_HEADER_NESTING = 128;

/** One tensor's entry in a safetensors header. */
export interface TensorEntry {
  /** Tensor name. */
  name: string;
  /** File dtype. */
  dtype: SafetensorsDtype;
  /** Shape. */
  shape: number[];
  /** Offsets in the data section, end exclusive. */
  begin: number;
  /** End offset in the data section (exclusive). */
  end: number;
}

/** A parsed and validated safetensors header. */
export interface SafetensorsHeader {
  /** Entries in file order (sorted by offset). */
  entries: TensorEntry[];
  /** The `__metadata__` strings (empty when absent). */
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file: 8 + header length. */
  dataStart: number;
}

/**
 * Reads the header length from the first 8 bytes and checks it against the file size.
 * `fileSize` is the whole file (or byte array) length.
 */
export function readHeaderLength(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw new SafetensorsError(
      `${source}: file is ${fileSize} bytes, too short for a safetensors file (needs an 8-byte header length ` +
        'and a JSON header); the file is truncated or not safetensors',
    );
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const length = view.getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      `${source}: header length field says ${length} bytes, above the ${MAX_HEADER_BYTES}-byte limit; the file ` +
        'is corrupt or not safetensors',
    );
  }
  const n = Number(length);
  if (n < 2) throw new SafetensorsError(`${source}: header length is ${n} bytes; a JSON object needs at least 2`);
  if (8 + n > fileSize) {
    throw new SafetensorsError(
      `${source}: header length field says ${n} bytes but only ${fileSize - 8} follow it; the file is truncated`,
    );
  }
  return n;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses and validates the JSON header bytes. `dataLength` is the size of the data section. */
export function parseHeader(headerBytes: Uint8Array, dataLength: number, source: string): SafetensorsHeader {
  let text: string;
  try {
    text = utf8.decode(headerBytes);
  } catch {
    throw new SafetensorsError(`${source}: the header is not valid UTF-8; the file is corrupt`);
  }
  if (!text.startsWith('{')) {
    throw new SafetensorsError(
      `${source}: the header must be a JSON object starting with '{', got ${JSON.stringify(text.slice(0, 20))}`,
    );
  }
  checkNesting(headerBytes, source);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SafetensorsError(`${source}: the header is not valid JSON (${(error as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError(`${source}: the header must be a JSON object`);
  }

  let metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value, source);
      continue;
    }
    entries.push(parseEntry(name, value, dataLength, source));
  }
  checkTiling(entries, dataLength, source);
  return { entries, metadata, dataStart: 8 + headerBytes.byteLength };
}

/**
 * Refuses JSON nested deeper than MAX_HEADER_NESTING, scanning the bytes before parsing. V8's JSON.parse copes with
 * any depth, but every later recursive walk of the value (JSON.stringify in an error message, structuredClone, a
 * caller's code) would overflow the stack with a bare RangeError; bounding the depth up front keeps all of them
 * shallow, where catching RangeError would have to guard each walk and depends on how much stack is left.
 */
function checkNesting(bytes: Uint8Array, source: string): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (inString) {
      if (b === 0x5c) i++; // backslash: skip the escaped byte (UTF-8 continuation bytes are never ASCII)
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) inString = true;
    else if (b === 0x7b || b === 0x5b) {
      if (++depth > MAX_HEADER_NESTING) {
        throw new SafetensorsError(
          `${source}: the header is nested more than ${MAX_HEADER_NESTING} levels deep (at byte ${8 + i}); a ` +
            'safetensors header needs 3 (header, tensor entry, shape), so the file is corrupt or not safetensors',
        );
      }
    } else if (b === 0x7d || b === 0x5d) depth--;
  }
}

function parseMetadata(value: unknown, source: string): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(`${source}: __metadata__ must be an object of string values, got ${describe(value)}`);
  }
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') {
      throw new SafetensorsError(`${source}: __metadata__["${key}"] must be a string, got ${describe(v)}`);
    }
    setOwn(out, key, v);
  }
  return out;
}

function parseEntry(name: string, value: unknown, dataLength: number, source: string): TensorEntry {
  const where = `${source}: tensor '${name}'`;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(`${where}: entry must be an object with dtype, shape, data_offsets; got ${describe(value)}`);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (!isSafetensorsDtype(dtype)) {
    throw new SafetensorsError(`${where}: unknown dtype ${describe(dtype)}; expected one of ${SAFETENSORS_DTYPES.join(', ')}`);
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
    throw new SafetensorsError(`${where}: shape must be an array of non-negative integers, got ${describe(shape)}`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !isNonNegativeInteger(offsets[0]) ||
    !isNonNegativeInteger(offsets[1])
  ) {
    throw new SafetensorsError(`${where}: data_offsets must be [begin, end] non-negative integers, got ${describe(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw new SafetensorsError(`${where}: data_offsets begin ${begin} > end ${end}`);
  if (end > dataLength) {
    throw new SafetensorsError(
      `${where}: data_offsets [${begin}, ${end}] run past the data section (${dataLength} bytes); the file is truncated or corrupt`,
    );
  }
  // The element count is bounded by the data length, so stop multiplying once it exceeds it.
  let count = 1;
  for (const d of shape as number[]) {
    count *= d;
    if (count > dataLength) count = dataLength + 1;
  }
  if (shape.some((d) => d === 0)) count = 0;
  const expected = count * DTYPE_BYTES[dtype];
  if (expected !== end - begin) {
    throw new SafetensorsError(
      `${where}: shape [${shape.join(', ')}] of ${dtype} needs ${count > dataLength ? `more than ${dataLength}` : expected} ` +
        `bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
    );
  }
  // `|| 0` turns a JSON -0 into 0.
  return { name, dtype, shape: (shape as number[]).map((d) => d || 0), begin, end };
}

function checkTiling(entries: TensorEntry[], dataLength: number, source: string): void {
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let position = 0;
  let previous: TensorEntry | undefined;
  for (const entry of entries) {
    if (entry.begin !== position) {
      const after = previous ? `after tensor '${previous.name}' ends at ${position}` : 'at the start of the data';
      throw new SafetensorsError(
        entry.begin < position
          ? `${source}: tensor '${entry.name}' [${entry.begin}, ${entry.end}] overlaps tensor '${previous!.name}' ` +
              `[${previous!.begin}, ${previous!.end}]`
          : `${source}: ${entry.begin - position} unexplained bytes ${after} (tensor '${entry.name}' begins at ` +
              `${entry.begin}); safetensors data must be contiguous`,
      );
    }
    position = entry.end;
    previous = entry;
  }
  if (position !== dataLength) {
    throw new SafetensorsError(
      `${source}: the tensors cover ${position} data bytes but the data section is ${dataLength} bytes; ` +
        'the file has trailing bytes or a missing tensor entry',
    );
  }
}

/** Serializes a header, padded with spaces to a multiple of 8 bytes so the data section starts aligned. */
export function serializeHeader(
  entries: readonly { name: string; dtype: string; shape: readonly number[]; begin: number; end: number }[],
  metadata: Record<string, string> | undefined,
): Uint8Array {
  const json: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') {
        throw new SafetensorsError(`metadata["${key}"] must be a string, got ${describe(value)}; convert it with String() or JSON.stringify()`);
      }
    }
    setOwn(json, '__metadata__', metadata);
  }
  for (const e of entries) {
    if (e.name === '__metadata__') throw new SafetensorsError(`'__metadata__' is reserved and cannot name a tensor`);
    setOwn(json, e.name, { dtype: e.dtype, shape: e.shape, data_offsets: [e.begin, e.end] });
  }
  const text = JSON.stringify(json);
  const padded = text + ' '.repeat((8 - (Buffer.byteLength(text, 'utf8') % 8)) % 8);
  const body = new TextEncoder().encode(padded);
  if (body.byteLength > MAX_HEADER_BYTES) {
    throw new SafetensorsError(`the header would be ${body.byteLength} bytes, above the ${MAX_HEADER_BYTES}-byte limit readers accept`);
  }
  const out = new Uint8Array(8 + body.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(body.byteLength), true);
  out.set(body, 8);
  return out;
}

/** Sets a key as an own property, even `__proto__`, which plain assignment would treat as the prototype. */
export function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
