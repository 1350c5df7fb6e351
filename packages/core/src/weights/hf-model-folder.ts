/**
 * An HF model folder as the encoders' importers and exporters meet it: the checkpoint's tensor names and its
 * config.json read without loading any tensor, and an export of weights plus config.json written as one unit.
 * A checkpoint path is a folder (with model.safetensors.index.json or model.safetensors), an index file, or one
 * safetensors file; config.json sits in the folder or beside the file.
 */
import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { writeFileAtomic } from './atomic';
import { commitDirectory } from './directory-commit';
import { readSafetensorsHeader, saveSafetensors } from './safetensors';
import { indexFileName, readSafetensorsIndex } from './sharded';

async function isFile(path: string): Promise<boolean> {
  return fs.stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** Every tensor name in a checkpoint path, from the index or the headers only; `who` starts the error messages. */
export async function checkpointTensorNames(path: string, who: string): Promise<string[]> {
  const stat = await fs.stat(path).catch(() => null);
  if (!stat) throw new Error(`${who}: ${path}: no such checkpoint file or directory`);
  let file = path;
  if (stat.isDirectory()) {
    const index = nodePath.join(path, indexFileName('model'));
    if (await isFile(index)) return Object.keys((await readSafetensorsIndex(index)).weightMap);
    file = nodePath.join(path, 'model.safetensors');
    if (!(await isFile(file))) throw new Error(`${who}: ${path} holds neither ${indexFileName('model')} nor model.safetensors`);
  } else if (path.endsWith('.json')) {
    return Object.keys((await readSafetensorsIndex(path)).weightMap);
  }
  return (await readSafetensorsHeader(file)).entries.map((e) => e.name);
}

/** The parsed config.json of a checkpoint path, or null when there is none. */
export async function readCheckpointConfig(path: string, who: string): Promise<unknown | null> {
  const stat = await fs.stat(path);
  const file = nodePath.join(stat.isDirectory() ? path : nodePath.dirname(path), 'config.json');
  if (!(await isFile(file))) return null;
  const text = await fs.readFile(file, 'utf8');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${who}: ${file} is not valid JSON (${(error as Error).message})`);
  }
}

/**
 * Writes `dir/model.safetensors` (F32, PyTorch metadata) and `dir/config.json`, replacing an earlier export in
 * `dir` as one unit (config.json last). `what` names the operation in errors. The caller owns `tensors`.
 */
export async function saveHFModelFolder(dir: string, tensors: Record<string, tf.Tensor>, config: unknown, what: string): Promise<void> {
  await commitDirectory(
    dir,
    async (staging) => {
      await saveSafetensors(nodePath.join(staging, 'model.safetensors'), tensors, { format: 'pt' });
      await writeFileAtomic(nodePath.join(staging, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    },
    { last: ['config.json'], what },
  );
}

/** The shapes of the named tensors in a checkpoint path, from the index and headers only. */
export async function checkpointTensorShapes(path: string, names: string[]): Promise<Map<string, number[]>> {
  const stat = await fs.stat(path);
  const wanted = new Set(names);
  const files: string[] = [];
  const indexPath = stat.isDirectory() ? nodePath.join(path, indexFileName('model')) : path.endsWith('.json') ? path : null;
  if (indexPath && (await isFile(indexPath))) {
    const dir = nodePath.dirname(indexPath);
    const { weightMap } = await readSafetensorsIndex(indexPath);
    files.push(...new Set(names.map((n) => nodePath.join(dir, weightMap[n]!))));
  } else {
    files.push(stat.isDirectory() ? nodePath.join(path, 'model.safetensors') : path);
  }
  const out = new Map<string, number[]>();
  for (const file of files) {
    for (const entry of (await readSafetensorsHeader(file)).entries) if (wanted.has(entry.name)) out.set(entry.name, entry.shape);
  }
  return out;
}
