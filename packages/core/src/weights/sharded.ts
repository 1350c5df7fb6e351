/**
 * Sharded safetensors checkpoints in the Hugging Face layout: `model-00001-of-00003.safetensors` files plus
 * `model.safetensors.index.json` ({"metadata": {"total_size": N}, "weight_map": {name: file}}); a checkpoint
 * that fits one shard is a single `model.safetensors` with no index, as HF writes it.
 *
 * A save replaces the folder's checkpoint as one unit (directory-commit.ts): killed at any moment, or racing
 * another save, the folder loads as the old checkpoint or the new one, never a mix; other files in the folder
 * are left alone. A load finishes an interrupted save first and re-reads if a save landed while it read.
 */
import type * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { removeAbandonedTemporaries, writeFileAtomic } from './atomic';
import { commitDirectory, readDirectoryConsistently, recoverDirectory } from './directory-commit';
import { SafetensorsError, setOwn } from './header';
import {
  fileByteLength,
  loadSafetensors,
  readSafetensorsHeader,
  saveSafetensors,
  type SafetensorsContents,
  type SaveSafetensorsOptions,
} from './safetensors';

/** Options of {@link saveShardedSafetensors}. */
export interface SaveShardedOptions extends SaveSafetensorsOptions {
  /** Upper bound on a shard's tensor bytes (default 5 GB, HF's default). A larger tensor gets a shard alone. */
  maxShardBytes?: number;
  /** Written into every shard's header and the index's metadata. */
  metadata?: Record<string, string>;
  /** File name stem (default 'model'). */
  prefix?: string;
}

/** What a sharded save wrote. */
export interface ShardedSaveResult {
  /** Shard file names (relative to the directory), in order. */
  files: string[];
  /** The index file path, or null when everything fit one file. */
  indexPath: string | null;
  /** Sum of tensor bytes, as the index's total_size. */
  totalSize: number;
}

/** A parsed `model.safetensors.index.json`. */
export interface SafetensorsIndex {
  /** Tensor name -> shard file name. */
  weightMap: Record<string, string>;
  /** The index's metadata, total_size included (as HF writes it, a number). */
  metadata: Record<string, unknown>;
}

/** Default shard size bound: 5 GB, as HF. */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

/** `<prefix>.safetensors.index.json`, the index file name HF uses. */
export function indexFileName(prefix = 'model'): string {
  return `${prefix}.safetensors.index.json`;
}

function shardFileName(prefix: string, index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `${prefix}-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/**
 * Splits tensors into shards, in insertion order, each at most maxShardBytes (HF's greedy rule). Returns the tensor
 * names of each shard and the total tensor bytes.
 */
export function planShards(
  tensors: Record<string, tf.Tensor>,
  maxShardBytes: number,
  options: SaveSafetensorsOptions = {},
): { shards: string[][]; totalSize: number } {
  if (!(maxShardBytes > 0)) throw new SafetensorsError(`maxShardBytes must be positive, got ${maxShardBytes}`);
  const shards: string[][] = [];
  let current: string[] = [];
  let currentBytes = 0;
  let totalSize = 0;
  for (const name of Object.keys(tensors)) {
    const bytes = fileByteLength(name, tensors[name]!, options);
    totalSize += bytes;
    if (current.length > 0 && currentBytes + bytes > maxShardBytes) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(name);
    currentBytes += bytes;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  return { shards, totalSize };
}

/**
 * Saves tensors as a (possibly) sharded checkpoint in `directory` (created if needed), replacing the checkpoint
 * of the same prefix already there as one unit.
 */
export async function saveShardedSafetensors(
  directory: string,
  tensors: Record<string, tf.Tensor>,
  options: SaveShardedOptions = {},
): Promise<ShardedSaveResult> {
  const prefix = options.prefix ?? 'model';
  const result = await commitDirectory(directory, (staging) => writeShardedSafetensors(staging, tensors, options), {
    stale: (written, existing) => existing.filter((name) => isCheckpointFile(name, prefix) && !written.includes(name)),
    last: [indexFileName(prefix)],
    what: 'save the checkpoint',
  });
  return { ...result, indexPath: result.indexPath && nodePath.join(directory, nodePath.basename(result.indexPath)) };
}

/**
 * Writes the shard files and the index into `directory` without the all-or-nothing commit: the building block
 * for a save that writes more files into the same version (an HF export's config and tokenizer), which runs it
 * inside commitDirectory's staging folder.
 */
export async function writeShardedSafetensors(
  directory: string,
  tensors: Record<string, tf.Tensor>,
  options: SaveShardedOptions = {},
): Promise<ShardedSaveResult> {
  const prefix = options.prefix ?? 'model';
  const { shards, totalSize } = planShards(tensors, options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES, options);
  const files = shards.length === 1 ? [`${prefix}.safetensors`] : shards.map((_, i) => shardFileName(prefix, i, shards.length));
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < shards.length; i++) {
    const part: Record<string, tf.Tensor> = {};
    for (const name of shards[i]!) {
      setOwn(part, name, tensors[name]!);
      setOwn(weightMap, name, files[i]!);
    }
    await saveSafetensors(nodePath.join(directory, files[i]!), part, options.metadata, options);
  }
  let indexPath: string | null = null;
  if (shards.length > 1) {
    indexPath = nodePath.join(directory, indexFileName(prefix));
    const index = { metadata: { ...options.metadata, total_size: totalSize }, weight_map: weightMap };
    await writeFileAtomic(indexPath, `${JSON.stringify(index, null, 2)}\n`);
  }
  return { files, indexPath, totalSize };
}

/** The files a checkpoint of this prefix consists of: `<prefix>.safetensors`, its shards and its index. */
export function isCheckpointFile(name: string, prefix = 'model'): boolean {
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped}(-\\d{5}-of-\\d{5})?\\.safetensors$`).test(name) || name === indexFileName(prefix);
}

/** Reads and checks an index file's structure (not the shards). */
export async function readSafetensorsIndex(indexPath: string): Promise<SafetensorsIndex> {
  let text: string;
  try {
    text = await fs.readFile(indexPath, 'utf8');
  } catch (error) {
    throw new SafetensorsError(`${indexPath}: cannot read the index (${(error as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SafetensorsError(`${indexPath}: the index is not valid JSON (${(error as Error).message})`);
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
    throw new SafetensorsError(`${indexPath}: the index needs a "weight_map" object of tensor name -> shard file`);
  }
  const out: Record<string, string> = {};
  for (const [name, file] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof file !== 'string' || !isPlainFileName(file)) {
      throw new SafetensorsError(
        `${indexPath}: weight_map["${name.slice(0, 200)}"] must be a file name in the index's directory, got ${describeValue(file)}`,
      );
    }
    setOwn(out, name, file);
  }
  const metadata = (json as { metadata?: unknown }).metadata;
  return {
    weightMap: out,
    metadata: metadata && typeof metadata === 'object' && !Array.isArray(metadata) ? (metadata as Record<string, unknown>) : {},
  };
}

/** A short description of a JSON value for messages, safe for hostile nesting and length. */
function describeValue(value: unknown): string {
  if (value !== null && typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}

/** No directories, no '..': an index may only point at files next to it. */
function isPlainFileName(file: string): boolean {
  return file.length > 0 && file !== '.' && file !== '..' && !/[\\/]/.test(file) && !file.includes('\0');
}

/** Options of {@link loadShardedSafetensors}. */
export interface LoadShardedOptions {
  /** Load only these tensors (every shard is still validated). */
  names?: readonly string[];
  /** File name stem (default 'model'). */
  prefix?: string;
}

/**
 * Loads a checkpoint directory: through `<prefix>.safetensors.index.json` when present (checking that every
 * listed shard exists and holds exactly the tensors the index assigns to it), else `<prefix>.safetensors`.
 * A path to a `.safetensors` or `.index.json` file works too. Metadata is the union of the shards' metadata.
 * An interrupted save into the folder is finished first, and leftovers of killed saves are removed.
 */
export async function loadShardedSafetensors(path: string, options: LoadShardedOptions = {}): Promise<SafetensorsContents> {
  const prefix = options.prefix ?? 'model';
  let stat = await fs.stat(path).catch(() => null);
  if (stat === null) {
    // A file whose folder's save was killed between its moves is back once the folder is recovered.
    await recoverDirectory(nodePath.dirname(path));
    stat = await fs.stat(path).catch(() => null);
    if (stat === null) throw new SafetensorsError(`${path}: no such checkpoint file or directory`);
  }
  if (stat.isDirectory()) {
    return readDirectoryConsistently(path, () => loadFromDirectory(path, prefix, options), disposeContents);
  }
  if (path.endsWith('.json')) {
    const directory = nodePath.dirname(path);
    return readDirectoryConsistently(directory, () => loadThroughIndex(path, options), disposeContents);
  }
  await recoverDirectory(nodePath.dirname(path));
  await removeAbandonedTemporaries(path);
  return loadSafetensors(path, options);
}

async function loadFromDirectory(path: string, prefix: string, options: LoadShardedOptions): Promise<SafetensorsContents> {
  const indexPath = nodePath.join(path, indexFileName(prefix));
  if (await exists(indexPath)) return loadThroughIndex(indexPath, options);
  const single = nodePath.join(path, `${prefix}.safetensors`);
  if (await exists(single)) return loadSafetensors(single, options);
  throw new SafetensorsError(`${path}: holds neither ${indexFileName(prefix)} nor ${prefix}.safetensors`);
}

async function loadThroughIndex(indexPath: string, options: LoadShardedOptions): Promise<SafetensorsContents> {
  const directory = nodePath.dirname(indexPath);
  const { weightMap } = await readSafetensorsIndex(indexPath);
  const claimed = new Map<string, string[]>();
  for (const [name, file] of Object.entries(weightMap)) {
    if (!claimed.has(file)) claimed.set(file, []);
    claimed.get(file)!.push(name);
  }
  // Validate every shard's header before reading any tensor data; report every mismatch at once.
  const metadata: Record<string, string> = {};
  const problems: string[] = [];
  for (const [file, names] of claimed) {
    const shardPath = nodePath.join(directory, file);
    if (!(await exists(shardPath))) {
      problems.push(`lists ${names.length} tensor(s) in ${file}, which does not exist in ${directory}`);
      continue;
    }
    const header = await readSafetensorsHeader(shardPath);
    const held = new Set(header.entries.map((e) => e.name));
    const absent = names.filter((n) => !held.has(n));
    const listed = new Set(names);
    const extra = header.entries.map((e) => e.name).filter((n) => !listed.has(n));
    if (absent.length || extra.length) {
      problems.push(
        `shard ${file} does not match the index` +
          (absent.length ? `; missing ${absent.length} tensor(s) the index assigns to it: ${preview(absent)}` : '') +
          (extra.length ? `; holds ${extra.length} tensor(s) the index does not assign to it: ${preview(extra)}` : ''),
      );
    }
    for (const [k, v] of Object.entries(header.metadata)) setOwn(metadata, k, v);
  }
  if (problems.length) {
    throw new SafetensorsError(`${indexPath}: the checkpoint is inconsistent:\n  ${problems.join('\n  ')}`);
  }

  const wanted = options.names ? [...new Set(options.names)] : Object.keys(weightMap);
  const unknown = wanted.filter((n) => !Object.prototype.hasOwnProperty.call(weightMap, n));
  if (unknown.length) throw new SafetensorsError(`${indexPath}: no tensor named ${preview(unknown)} in the index`);
  const byFile = new Map<string, string[]>();
  for (const name of wanted) {
    const file = weightMap[name]!;
    if (!byFile.has(file)) byFile.set(file, []);
    byFile.get(file)!.push(name);
  }
  const tensors: Record<string, tf.Tensor> = {};
  try {
    for (const [file, names] of byFile) {
      const part = await loadSafetensors(nodePath.join(directory, file), { names });
      for (const [name, tensor] of Object.entries(part.tensors)) setOwn(tensors, name, tensor);
    }
  } catch (error) {
    for (const t of Object.values(tensors)) t.dispose();
    throw error;
  }
  return { tensors, metadata };
}

function disposeContents(contents: SafetensorsContents): void {
  for (const t of Object.values(contents.tensors)) t.dispose();
}

async function exists(path: string): Promise<boolean> {
  return fs.stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

function preview(names: string[]): string {
  return names.slice(0, 6).map((n) => `'${n}'`).join(', ') + (names.length > 6 ? ', ...' : '');
}
