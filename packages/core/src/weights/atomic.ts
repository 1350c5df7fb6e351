/**
 * Atomic file writes: write a temporary file in the target's directory, fsync it, then rename it over the
 * target, so a reader sees either the old file or the complete new one, never a torn write. On failure the
 * temporary file is removed and the old file is left as it was.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';

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
 * at `path` is untouched, and the error propagates.
 */
export async function withAtomicFile(path: string, write: (file: fs.FileHandle) => Promise<void>): Promise<void> {
  const directory = nodePath.dirname(nodePath.resolve(path));
  const temporary = nodePath.join(
    directory,
    `.${nodePath.basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
  );
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
    throw error;
  }
  await syncDirectory(directory);
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

/** Makes the rename durable; not every platform can open a directory (Windows), which is not an error. */
async function syncDirectory(directory: string): Promise<void> {
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
