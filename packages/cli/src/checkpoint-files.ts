// The safetensors files behind a path the user names: one .safetensors file, an index (.index.json), or a folder
// (its model.safetensors.index.json, else model.safetensors, else every .safetensors file in it). Only headers are
// read (core's readSafetensorsHeader validates them), never tensor data.
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import type { TensorEntry } from '@chimera/core';

// @chimera/core (and tfjs with it) loads on first use, so `chimera --help` and usage errors stay instant.
const core = () => import('@chimera/core');

export interface CheckpointFile {
  path: string;
  entries: TensorEntry[];
  metadata: Record<string, string>;
}

export interface CheckpointFiles {
  /** The folder config.json would sit in. */
  dir: string;
  files: CheckpointFile[];
  /** 'chimera' when the files carry saveCheckpoint's metadata (Chimera names and [in, out] layouts), else 'hf'. */
  layout: 'chimera' | 'hf';
  /** saveCheckpoint's kind ('full' or 'trainable') for a Chimera checkpoint. */
  chimeraKind?: string;
}

async function statOf(path: string) {
  return fs.stat(path).catch(() => null);
}

async function filesOf(path: string): Promise<{ dir: string; paths: string[] }> {
  const stat = await statOf(path);
  if (!stat) throw new Error(`${path}: no such file or folder; pass a .safetensors file, an .index.json or a model folder`);
  if (stat.isDirectory()) {
    const { indexFileName } = await core();
    const index = nodePath.join(path, indexFileName('model'));
    if (await statOf(index)) return { dir: path, paths: await indexedFiles(index) };
    const single = nodePath.join(path, 'model.safetensors');
    if (await statOf(single)) return { dir: path, paths: [single] };
    const all = (await fs.readdir(path)).filter((name) => name.endsWith('.safetensors')).sort();
    if (all.length === 0) {
      throw new Error(`${path} holds no .safetensors file (nor ${indexFileName('model')}); pass the folder of a saved model or checkpoint`);
    }
    return { dir: path, paths: all.map((name) => nodePath.join(path, name)) };
  }
  if (path.endsWith('.json')) return { dir: nodePath.dirname(path), paths: await indexedFiles(path) };
  if (!path.endsWith('.safetensors')) throw new Error(`${path} is neither a .safetensors file, an .index.json nor a folder`);
  return { dir: nodePath.dirname(path), paths: [path] };
}

async function indexedFiles(indexPath: string): Promise<string[]> {
  const { weightMap } = await (await core()).readSafetensorsIndex(indexPath);
  const dir = nodePath.dirname(indexPath);
  return [...new Set(Object.values(weightMap))].sort().map((file) => nodePath.join(dir, file));
}

/** Finds and reads the headers of the safetensors files behind `path`. */
export async function readCheckpointFiles(path: string): Promise<CheckpointFiles> {
  const { dir, paths } = await filesOf(path);
  const { CHECKPOINT_KIND_KEY, readSafetensorsHeader } = await core();
  const files: CheckpointFile[] = [];
  for (const file of paths) {
    const header = await readSafetensorsHeader(file);
    files.push({ path: file, entries: header.entries, metadata: header.metadata });
  }
  const kinds = [...new Set(files.map((f) => f.metadata[CHECKPOINT_KIND_KEY]).filter((k): k is string => k !== undefined))];
  if (kinds.length === 0) return { dir, files, layout: 'hf' };
  return { dir, files, layout: 'chimera', chimeraKind: kinds.join('+') };
}

/** The parsed config.json in `dir`, or null when there is none. */
export async function readConfigJson(path: string): Promise<Record<string, unknown> | null> {
  const stat = await statOf(path);
  const file = stat?.isDirectory() ? nodePath.join(path, 'config.json') : path;
  if (!(await statOf(file))) return null;
  const text = await fs.readFile(file, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${file} is not valid JSON (${(error as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${file} must hold a JSON object (an HF config.json)`);
  return json as Record<string, unknown>;
}
