/**
 * Atomic file writes: write a temporary file in the target's directory, fsync it, then rename it over the
 * target, so a reader sees either the old file or the complete new one, never a torn write. On failure the
 * temporary file is removed and the old file is left as it was; a temporary left by a killed process (its name
 * records the pid) is removed by the next save or load of the same file.
 */
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { ownedSuffix, ownerOf, processIsAlive } from './save-lock';
import { describeWriteFailure } from './write-errors';

/** Writes `data` to `path` atomically (temp file in the same directory, fsync, rename, fsync the directory). */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await withAtomicFile(path, async (file) => {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    await writeAll(file, bytes);
  });
}

/**
 * Streams a file into place atomically: `write` receives an open handle to a temporary file; when it resolves,
 * the file is fsynced and renamed over `path`. If `write` throws, the temporary file is removed, the old file
 * at `path` is untouched, and the error propagates (a file-system error as a WriteError naming `path`).
 */
export async function withAtomicFile(path: string, write: (file: fs.FileHandle) => Promise<void>): Promise<void> {
  const directory = nodePath.dirname(nodePath.resolve(path));
  const temporary = nodePath.join(directory, `${temporaryPrefix(path)}${ownedSuffix()}`);
  let file: fs.FileHandle | undefined;
  try {
    file = await fs.open(temporary, 'wx');
    await write(file);
    await file.sync();
    await file.close();
    file = undefined;
    await fs.rename(temporary, path);
  } catch (error) {
    await file?.close().catch(() => undefined);
    await fs.rm(temporary, { force: true }).catch(() => undefined);
    throw await describeWriteFailure(error, path);
  }
  await syncDirectory(directory);
  await removeAbandonedTemporaries(path);
}

/** Writes every byte (a single write call may write fewer). */
export async function writeAll(file: fs.FileHandle, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.byteLength) {
    // Chunks stay below the 2 GiB limit of a single write call.
    const length = Math.min(bytes.byteLength - written, 1 << 30);
    const result = await file.write(bytes, written, length);
    written += result.bytesWritten;
  }
}

/** `.model.safetensors.tmp-`: what every temporary of `path` starts with, before its owner suffix. */
function temporaryPrefix(path: string): string {
  return `.${nodePath.basename(path)}.tmp-`;
}

/** Removes temporaries of `path` whose writer no longer runs (killed mid-write). Best effort. */
export async function removeAbandonedTemporaries(path: string): Promise<void> {
  const directory = nodePath.dirname(nodePath.resolve(path));
  const prefix = temporaryPrefix(path);
  const names = await fs.readdir(directory).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const owner = ownerOf(name, prefix);
    if (owner !== null && !processIsAlive(owner)) await fs.rm(nodePath.join(directory, name), { force: true }).catch(() => undefined);
  }
}

/** Makes renames durable; not every platform can open a directory (Windows), which is not an error. */
export async function syncDirectory(directory: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(directory, 'r');
    await handle.sync();
  } catch {
    // Best effort only.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
