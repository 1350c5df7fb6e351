/**
 * One blob of the Hub cache, downloaded so that an interruption costs nothing already received: bytes go to
 * `blobs/<etag>.incomplete` (Python's name, so either tool resumes the other's partial file), a retry or a later
 * call continues from its size with a Range request, and the finished file is checked against its ETag (sha256 of
 * an LFS file, git blob id of any other) before it is renamed into place. One process at a time writes a blob
 * (core's save lock, taken over when its owner has died).
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { writeAll } from '../weights/atomic';
import { withSaveLock } from '../weights/save-lock';
import { blobPath } from './cache-layout';
import { HubHttpError, type RangeResponse } from './hub-http';

export interface DownloadBlobOptions {
  repoDir: string;
  /** Where the lock lives: `<cache>/.locks/models--org--name/`. */
  lockDir: string;
  etag: string;
  size: number;
  /** Opens the file from a byte offset (see openRange). */
  open: (offset: number, signal: AbortSignal) => Promise<RangeResponse>;
  /** Further attempts after a failed or cut transfer, each resuming where the last stopped. */
  retries: number;
  retryDelayMs: number;
  /** Abort a transfer that has sent nothing for this long (then it counts as a failed attempt). */
  idleTimeoutMs: number;
  /** Called with the bytes on disk after every chunk (and once at the start, for a resumed file). */
  onBytes: (onDisk: number) => void;
  /** Names the file in messages, e.g. `model.safetensors of org/name at <commit>`. */
  what: string;
}

/** Downloads blobs/<etag> unless it is there; see the file comment. */
export async function downloadBlob(options: DownloadBlobOptions): Promise<void> {
  const blob = blobPath(options.repoDir, options.etag);
  const lock = nodePath.join(options.lockDir, `${options.etag}.chimera-lock`);
  await withSaveLock(lock, blob, () => downloadLocked(blob, options), {
    prepare: async () => {
      await fs.mkdir(options.lockDir, { recursive: true });
      await fs.mkdir(nodePath.dirname(blob), { recursive: true });
    },
  });
}

async function downloadLocked(blob: string, options: DownloadBlobOptions): Promise<void> {
  const { size } = options;
  if (await fs.stat(blob).then((s) => s.isFile(), () => false)) return; // another process finished it meanwhile
  const incomplete = `${blob}.incomplete`;
  let onDisk = await fs.stat(incomplete).then((s) => s.size, () => 0);
  const file = await fs.open(incomplete, 'a');
  let hash = newHash(options.etag, size);
  let failures = 0;
  try {
    if (onDisk > size) {
      await file.truncate(0);
      onDisk = 0;
    }
    if (hash && onDisk > 0) await hashPrefix(incomplete, onDisk, hash);
    options.onBytes(onDisk);
    while (onDisk < size) {
      const controller = new AbortController();
      const idle = setTimeout(
        () => controller.abort(new Error(`no data for ${options.idleTimeoutMs / 1000} s`)),
        options.idleTimeoutMs,
      );
      try {
        const { body, start } = await options.open(onDisk, controller.signal);
        if (start !== onDisk) {
          // The server ignored the Range header and sends the whole file: start the blob over.
          await file.truncate(0);
          onDisk = 0;
          hash = newHash(options.etag, size);
          options.onBytes(0);
        }
        for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
          idle.refresh();
          if (onDisk + chunk.length > size) {
            throw new Error(`the server sent more than the ${size} bytes the Hub lists for it`);
          }
          await writeAll(file, chunk);
          hash?.update(chunk);
          onDisk += chunk.length;
          options.onBytes(onDisk);
        }
        if (onDisk < size) throw new Error(`the response ended after ${onDisk} of ${size} bytes`);
      } catch (error) {
        failures++;
        // A refusal (404, 401, ...) is not worth retrying; the caller turns it into advice.
        if (error instanceof HubHttpError && !error.retryable) throw error;
        if (failures > options.retries) {
          const reason = controller.signal.aborted ? String((controller.signal.reason as Error)?.message) : describe(error);
          throw new Error(
            `hub: downloading ${options.what} stopped at ${onDisk} of ${size} bytes after ${failures} attempt(s): ${reason}. ` +
              `The partial file ${incomplete} stays; run again to resume from it (or raise the retries option)`,
            { cause: error },
          );
        }
        await new Promise((resolve) => setTimeout(resolve, options.retryDelayMs * failures));
      } finally {
        clearTimeout(idle);
      }
    }
    await file.sync();
  } finally {
    await file.close();
  }
  const expected = options.etag.toLowerCase();
  const actual = hash?.digest('hex');
  if (actual !== undefined && actual !== expected) {
    await fs.rm(incomplete, { force: true });
    throw new Error(
      `hub: ${options.what} arrived with ${size} bytes but its hash is ${actual}, not the ${expected} the Hub lists; ` +
        'the damaged download was removed, run again to fetch it afresh',
    );
  }
  await fs.rename(incomplete, blob);
}

/**
 * The hash the ETag names: sha256 for an LFS file (64 hex digits), git's blob id (sha1 of "blob <size>\0" and the
 * bytes, 40 hex digits) for any other; null for an ETag of another form, which is then not checked.
 */
function newHash(etag: string, size: number): Hash | null {
  if (/^[0-9a-f]{64}$/i.test(etag)) return createHash('sha256');
  if (/^[0-9a-f]{40}$/i.test(etag)) return createHash('sha1').update(`blob ${size}\0`);
  return null;
}

async function hashPrefix(path: string, length: number, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1 })) hash.update(chunk as Buffer);
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  // fetch reports a cut connection as "terminated" with the socket error as its cause.
  return cause instanceof Error && cause.message && cause.message !== error.message ? `${error.message} (${cause.message})` : error.message;
}
