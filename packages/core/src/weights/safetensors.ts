/**
 * Safetensors read/write for TensorFlow.js tensors: byte-level encode/decode, atomic file save, and file load
 * that validates the whole header first and then reads only the requested tensors, each straight into the
 * array its tensor keeps (one copy from disk, no whole-file buffer).
 */
import * as tf from '@tensorflow/tfjs';
import { constants as bufferConstants } from 'node:buffer';
import { promises as fs } from 'node:fs';
import { withAtomicFile, writeAll } from './atomic';
import {
  DECODED_TF_DTYPE,
  decodeElements,
  DTYPE_BYTES,
  DtypeConversionError,
  encodeElements,
  type WritableDtype,
} from './dtypes';
import {
  elementCount,
  parseHeader,
  readHeaderLength,
  SafetensorsError,
  serializeHeader,
  setOwn,
  type SafetensorsHeader,
  type TensorEntry,
} from './header';

export { writeFileAtomic } from './atomic';
export { SafetensorsError } from './header';

/** Tensors and metadata read from safetensors. */
export interface SafetensorsContents {
  /** Owned by the caller: dispose them. */
  tensors: Record<string, tf.Tensor>;
  /** The header's `__metadata__` strings. */
  metadata: Record<string, string>;
}

/** How tensors are encoded when saved. */
export interface SaveSafetensorsOptions {
  /** File dtype for float32 tensors (default F32). F16/BF16 round to nearest even. */
  floatDtype?: 'F32' | 'F16' | 'BF16';
  /** File dtype for int32 tensors (default I32). I64 is PyTorch's default integer type. */
  intDtype?: 'I32' | 'I64';
  /** Per-tensor file dtypes by name, overriding floatDtype / intDtype. */
  dtypes?: Record<string, WritableDtype>;
}

/** Options of {@link loadSafetensors}. */
export interface LoadSafetensorsOptions {
  /** Decode only these tensors (the header is still validated in full). A name not in the file is an error. */
  names?: readonly string[];
}

interface PlannedTensor {
  name: string;
  tensor: tf.Tensor;
  dtype: WritableDtype;
  shape: number[];
  begin: number;
  end: number;
}

const FILE_DTYPES_FOR: Record<string, readonly WritableDtype[]> = {
  float32: ['F32', 'F16', 'BF16'],
  int32: ['I32', 'I64'],
  bool: ['BOOL'],
};

/** The file dtype `tensor` is written as under `options`; throws SafetensorsError if it cannot be encoded. */
export function chooseFileDtype(name: string, tensor: tf.Tensor, options: SaveSafetensorsOptions = {}): WritableDtype {
  if (!(tensor instanceof tf.Tensor)) {
    throw new SafetensorsError(`tensor '${name}' is not a tf.Tensor (got ${typeof tensor}); pass tensors only`);
  }
  if (tensor.isDisposed) throw new SafetensorsError(`tensor '${name}' is disposed; save it before disposing it`);
  const allowed = FILE_DTYPES_FOR[tensor.dtype];
  if (!allowed) {
    throw new SafetensorsError(
      `tensor '${name}' has dtype ${tensor.dtype}, which safetensors cannot store; cast it to float32, int32 or bool`,
    );
  }
  const override = options.dtypes && Object.prototype.hasOwnProperty.call(options.dtypes, name) ? options.dtypes[name] : undefined;
  const requested =
    override ??
    (tensor.dtype === 'float32' ? options.floatDtype : tensor.dtype === 'int32' ? options.intDtype : undefined) ??
    allowed[0]!;
  if (!allowed.includes(requested)) {
    throw new SafetensorsError(
      `tensor '${name}' is ${tensor.dtype} and cannot be written as ${requested}; allowed: ${allowed.join(', ')}`,
    );
  }
  return requested;
}

/** Bytes `tensor` takes in a file under `options`. */
export function fileByteLength(name: string, tensor: tf.Tensor, options: SaveSafetensorsOptions = {}): number {
  return tensor.size * DTYPE_BYTES[chooseFileDtype(name, tensor, options)];
}

/** Chooses file dtypes and offsets; throws before any byte is written if a tensor cannot be encoded. */
function planTensors(tensors: Record<string, tf.Tensor>, options: SaveSafetensorsOptions): PlannedTensor[] {
  const planned = Object.keys(tensors).map((name) => {
    const tensor = tensors[name]!;
    return { name, tensor, dtype: chooseFileDtype(name, tensor, options), shape: tensor.shape.slice() };
  });
  // Wider elements first (stable), as HF's writer does: with an 8-aligned data section every tensor then
  // starts aligned to its element size, which lets readers view the bytes without copying.
  planned.sort((a, b) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype]);
  let offset = 0;
  return planned.map((p) => {
    const begin = offset;
    offset += elementCount(p.shape) * DTYPE_BYTES[p.dtype];
    return { ...p, begin, end: offset };
  });
}

function encodePlanned(p: PlannedTensor, values: unknown): Uint8Array {
  if (!(values instanceof Float32Array || values instanceof Int32Array || values instanceof Uint8Array)) {
    throw new SafetensorsError(`tensor '${p.name}': unexpected data type from TensorFlow.js`);
  }
  const bytes = encodeElements(values, p.dtype);
  if (bytes.byteLength !== p.end - p.begin) {
    throw new SafetensorsError(
      `tensor '${p.name}': encoded ${bytes.byteLength} bytes, expected ${p.end - p.begin} for shape [${p.shape}]`,
    );
  }
  return bytes;
}

/** Encodes tensors into safetensors bytes (synchronous: reads the tensors with dataSync). */
export function encodeSafetensors(
  tensors: Record<string, tf.Tensor>,
  metadata?: Record<string, string>,
  options: SaveSafetensorsOptions = {},
): Uint8Array {
  const plan = planTensors(tensors, options);
  const header = serializeHeader(plan, metadata);
  const dataLength = plan.length ? plan[plan.length - 1]!.end : 0;
  const out = new Uint8Array(header.byteLength + dataLength);
  out.set(header, 0);
  for (const p of plan) out.set(encodePlanned(p, p.tensor.dataSync()), header.byteLength + p.begin);
  return out;
}

/** Writes tensors to `path` atomically: on any failure the previous file is untouched and no temp file remains. */
export async function saveSafetensors(
  path: string,
  tensors: Record<string, tf.Tensor>,
  metadata?: Record<string, string>,
  options: SaveSafetensorsOptions = {},
): Promise<void> {
  const plan = planTensors(tensors, options);
  const header = serializeHeader(plan, metadata);
  await withAtomicFile(path, async (file) => {
    await writeAll(file, header);
    // One tensor's bytes at a time, so peak memory is the largest tensor, not the file.
    for (const p of plan) await writeAll(file, encodePlanned(p, await p.tensor.data()));
  });
}

/** Validates and parses the header of in-memory safetensors bytes. */
export function parseSafetensorsHeader(bytes: Uint8Array, source = 'safetensors bytes'): SafetensorsHeader {
  const headerLength = readHeaderLength(bytes, bytes.byteLength, source);
  return parseHeader(bytes.subarray(8, 8 + headerLength), bytes.byteLength - 8 - headerLength, source);
}

/** Decodes safetensors bytes. The tensors are copies: the input may be reused afterwards. */
export function decodeSafetensors(
  bytes: Uint8Array,
  options: LoadSafetensorsOptions & { source?: string } = {},
): SafetensorsContents {
  const source = options.source ?? 'safetensors bytes';
  const header = parseSafetensorsHeader(bytes, source);
  const selected = selectEntries(header, options.names, source);
  return buildTensors(selected, header.metadata, source, (entry) =>
    bytes.subarray(header.dataStart + entry.begin, header.dataStart + entry.end),
  );
}

/** Reads and validates only the header of a file: names, dtypes, shapes, offsets and metadata. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const file = await openForReading(path);
  try {
    return await readHeaderFrom(file, path);
  } finally {
    await file.close();
  }
}

/** Loads a safetensors file (or only `options.names` from it). Corrupt or truncated files raise SafetensorsError. */
export async function loadSafetensors(
  path: string,
  options: LoadSafetensorsOptions = {},
): Promise<SafetensorsContents> {
  const file = await openForReading(path);
  try {
    const header = await readHeaderFrom(file, path);
    const selected = selectEntries(header, options.names, path);
    const chunks = new Map<TensorEntry, Uint8Array>();
    for (const entry of selected) {
      // A fresh array per tensor: aligned, owned by the tensor, so F32/I32 need no second copy.
      const bytes = allocate(entry, path, () => new Uint8Array(entry.end - entry.begin));
      await readExactly(file, bytes, header.dataStart + entry.begin, path, entry.name);
      chunks.set(entry, bytes);
    }
    return buildTensors(selected, header.metadata, path, (entry) => chunks.get(entry)!, true);
  } finally {
    await file.close();
  }
}

async function openForReading(path: string): Promise<fs.FileHandle> {
  try {
    return await fs.open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new SafetensorsError(
      code === 'ENOENT' ? `${path}: no such safetensors file` : `${path}: cannot open (${(error as Error).message})`,
    );
  }
}

async function readHeaderFrom(file: fs.FileHandle, path: string): Promise<SafetensorsHeader> {
  const { size } = await file.stat();
  const prefix = new Uint8Array(Math.min(8, size));
  await readExactly(file, prefix, 0, path, 'header length');
  const headerLength = readHeaderLength(prefix, size, path);
  const headerBytes = new Uint8Array(headerLength);
  await readExactly(file, headerBytes, 8, path, 'header');
  return parseHeader(headerBytes, size - 8 - headerLength, path);
}

async function readExactly(
  file: fs.FileHandle,
  into: Uint8Array,
  position: number,
  path: string,
  what: string,
): Promise<void> {
  let filled = 0;
  while (filled < into.byteLength) {
    const length = Math.min(into.byteLength - filled, 1 << 30);
    const { bytesRead } = await file.read(into, filled, length, position + filled);
    if (bytesRead === 0) {
      throw new SafetensorsError(
        `${path}: reading ${what} hit the end of the file after ${filled} of ${into.byteLength} bytes; ` +
          'the file was truncated or changed while reading',
      );
    }
    filled += bytesRead;
  }
}

function selectEntries(header: SafetensorsHeader, names: readonly string[] | undefined, source: string): TensorEntry[] {
  if (!names) return header.entries;
  const byName = new Map(header.entries.map((e) => [e.name, e]));
  const missing = names.filter((n) => !byName.has(n));
  if (missing.length) {
    const available = header.entries.map((e) => e.name);
    throw new SafetensorsError(
      `${source}: no tensor named ${missing.map((n) => `'${n}'`).join(', ')}; the file holds ${available.length} ` +
        `tensors (${available.slice(0, 8).join(', ')}${available.length > 8 ? ', ...' : ''})`,
    );
  }
  return [...new Set(names)].map((n) => byName.get(n)!);
}

/**
 * Decodes every entry into a tensor. Values are decoded first (where conversion errors happen), tensors made
 * only when all succeeded, so a failure leaves nothing to dispose.
 */
function buildTensors(
  entries: readonly TensorEntry[],
  metadata: Record<string, string>,
  source: string,
  bytesOf: (entry: TensorEntry) => Uint8Array,
  owned = false,
): SafetensorsContents {
  const decoded = entries.map((entry) => {
    try {
      return allocate(entry, source, () => decodeElements(entry.dtype, bytesOf(entry), elementCount(entry.shape), owned));
    } catch (error) {
      if (error instanceof DtypeConversionError) {
        throw new SafetensorsError(`${source}: tensor '${entry.name}': ${error.message}`);
      }
      throw error;
    }
  });
  const tensors: Record<string, tf.Tensor> = {};
  entries.forEach((entry, i) => {
    setOwn(tensors, entry.name, tf.tensor(decoded[i]!, entry.shape, DECODED_TF_DTYPE[entry.dtype]));
  });
  return { tensors, metadata };
}

/** The longest typed array this Node.js can make (elements; 2^32 on Node 20). */
const MAX_ARRAY_LENGTH = bufferConstants.MAX_LENGTH;

/**
 * Runs an allocation for `entry`'s bytes or values. A tensor longer than Node's typed-array limit is refused
 * before trying; any other RangeError (V8's "Array buffer allocation failed" when memory runs out) is reported
 * with the file, the tensor and its size instead of bare.
 */
function allocate<T>(entry: TensorEntry, source: string, make: () => T): T {
  const bytes = entry.end - entry.begin;
  const what = `${source}: tensor '${entry.name}' (${entry.dtype} [${entry.shape.join(', ')}], ${bytes} bytes)`;
  if (bytes > MAX_ARRAY_LENGTH || elementCount(entry.shape) > MAX_ARRAY_LENGTH) {
    throw new SafetensorsError(
      `${what} is larger than the largest array Node.js can allocate (${MAX_ARRAY_LENGTH} elements, ` +
        'buffer.constants.MAX_LENGTH); TensorFlow.js holds each tensor in one array, so split the tensor when saving it',
    );
  }
  try {
    return make();
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new SafetensorsError(
      `${what} could not be allocated (${error.message}); Node.js allows arrays of up to ${MAX_ARRAY_LENGTH} ` +
        'elements and this process may be out of memory: load fewer tensors at once (options.names) or free memory',
    );
  }
}
