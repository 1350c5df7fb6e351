/**
 * Saves that write several files into one folder (a sharded checkpoint, an HF export, a training checkpoint)
 * change it as one unit, the way a database's redo log does:
 *
 *   1. the new files are written into a hidden staging folder inside the target (invisible to readers);
 *   2. a commit record (`.chimera-commit.json`, written atomically) lists them and the old files they make
 *      stale: this is the commit point;
 *   3. the files are renamed into place, the stale ones deleted, then the record.
 *
 * A kill before step 2 leaves the old version untouched (and an abandoned staging folder, which the next save or
 * load removes); a kill after it leaves a record that the next save or load finishes, since every step is
 * idempotent. Saves into one folder are serialised by a lock (save-lock.ts); a load reads the folder only when
 * no commit is half done, and again if one happened while it read. Files of the folder that a save does not
 * name are left alone, so a folder can hold other things.
 */
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { syncDirectory, writeFileAtomic } from './atomic';
import { ownedSuffix, ownerOf, processIsAlive, removeStaleLock, withSaveLock } from './save-lock';
import { describeWriteFailure } from './write-errors';

/** The commit record's file name inside the target folder. */
export const COMMIT_RECORD = '.chimera-commit.json';
/** The lock file serialising saves into a folder. */
export const SAVE_LOCK = '.chimera-save.lock';
const STAGING_MARKER = '.chimera-staging-';
const RECORD_FORMAT = 'chimera-commit';

interface CommitRecord {
  format: typeof RECORD_FORMAT;
  version: 1;
  /** The staging folder's name inside the target. */
  staging: string;
  /** Files to move from staging into the target, in this order. */
  files: string[];
  /** Files of the old version to delete once the new ones are in place. */
  remove: string[];
}

/** Options of {@link commitDirectory}. */
export interface CommitDirectoryOptions {
  /**
   * Names of files already in the folder that the new version makes stale (old shards, an index the new
   * version no longer needs), given the names written to staging and those present. Default: none.
   */
  stale?: (written: string[], existing: string[]) => string[];
  /** Files to move into place last (an index, config.json, trainer.json), so they appear only once the rest has. */
  last?: string[];
  /** The operation, for error messages (default 'save'). */
  what?: string;
}

/**
 * Writes a new version of the folder `dir` as one unit: `write(staging)` puts the new files in a private
 * staging folder (flat: files only), and they replace their namesakes in `dir` together. Returns what `write`
 * returned. On failure before the commit point, `dir` is as it was; the error names `dir`, not the staging.
 */
export async function commitDirectory<T>(
  dir: string,
  write: (staging: string) => Promise<T>,
  options: CommitDirectoryOptions = {},
): Promise<T> {
  const what = options.what ?? 'save';
  let created = false;
  // The folder is made in this save's turn, so saves called in one process commit in call order.
  const prepare = async () => {
    created = !(await fs.stat(dir).then(() => true, () => false));
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (error) {
      throw await describeWriteFailure(error, dir, what);
    }
  };
  try {
    return await commitLocked(dir, write, options, what, prepare);
  } catch (error) {
    // A folder this save made for itself goes again (only if it stayed empty).
    if (created) await fs.rmdir(dir).catch(() => undefined);
    throw error;
  }
}

async function commitLocked<T>(
  dir: string,
  write: (staging: string) => Promise<T>,
  options: CommitDirectoryOptions,
  what: string,
  prepare: () => Promise<void>,
): Promise<T> {
  return withSaveLock(nodePath.join(dir, SAVE_LOCK), dir, async () => {
    await finishInterruptedCommit(dir);
    const staging = nodePath.join(dir, `${STAGING_MARKER}${ownedSuffix()}`);
    let result: T;
    let record: CommitRecord;
    try {
      await fs.mkdir(staging);
      result = await write(staging);
      const entries = await fs.readdir(staging, { withFileTypes: true });
      const nested = entries.filter((e) => !e.isFile()).map((e) => e.name);
      if (nested.length) throw new Error(`commitDirectory: the staged version must be flat files; got folder(s) ${nested.join(', ')}`);
      const written = orderLast(entries.map((e) => e.name).sort(), options.last ?? []);
      const existing = (await fs.readdir(dir)).filter((name) => !isBookkeeping(name));
      const remove = (options.stale?.(written, existing) ?? []).filter((name) => !written.includes(name) && existing.includes(name));
      record = { format: RECORD_FORMAT, version: 1, staging: nodePath.basename(staging), files: written, remove };
      await syncDirectory(staging);
      await writeFileAtomic(nodePath.join(dir, COMMIT_RECORD), `${JSON.stringify(record, null, 2)}\n`);
    } catch (error) {
      await fs.rm(staging, { recursive: true, force: true }).catch(() => undefined);
      throw await describeWriteFailure(error, dir, what);
    }
    try {
      await rollForward(dir, record);
    } catch (error) {
      throw await describeWriteFailure(error, dir, what, 'after-commit');
    }
    return result;
  }, { prepare });
}

/**
 * Makes `dir` readable after an interrupted save: finishes a committed save (under the save lock, waiting for a
 * live saver), and removes staging folders and temporaries whose writer no longer runs. Cheap when there is
 * nothing to do (one readdir). A missing folder is left for the caller to report.
 */
export async function recoverDirectory(dir: string): Promise<void> {
  let names = await fs.readdir(dir).catch(() => null);
  if (names === null) return;
  if (names.includes(COMMIT_RECORD)) {
    await withSaveLock(nodePath.join(dir, SAVE_LOCK), dir, () => finishInterruptedCommit(dir));
    names = (await fs.readdir(dir).catch(() => null)) ?? [];
  }
  if (names.includes(SAVE_LOCK)) await removeStaleLock(nodePath.join(dir, SAVE_LOCK));
  for (const name of names) {
    const owner = name.startsWith(STAGING_MARKER) ? ownerOf(name, STAGING_MARKER) : name.startsWith('.') ? ownerOf(name, '.tmp-') : null;
    if (owner !== null && !processIsAlive(owner)) await fs.rm(nodePath.join(dir, name), { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * Reads `dir` consistently with saves into it: recovers it first, then runs `read`, and runs it again when
 * the folder changed meanwhile (a save committed while it read). `discard` frees a result read from a
 * changing folder.
 */
export async function readDirectoryConsistently<T>(dir: string, read: () => Promise<T>, discard: (stale: T) => void = () => undefined): Promise<T> {
  for (let attempt = 0; attempt < 5; attempt++) {
    await recoverDirectory(dir);
    const before = await stamp(dir);
    const result = await read();
    if ((await stamp(dir)) === before) return result;
    discard(result);
  }
  throw new Error(`${dir}: the folder kept changing while it was read (another process is saving into it repeatedly); read it once that save has finished`);
}

/** Whether a name in a target folder is this mechanism's own (lock, record, staging, temporaries). */
export function isBookkeeping(name: string): boolean {
  return name === SAVE_LOCK || name === COMMIT_RECORD || name.startsWith(STAGING_MARKER) || (name.startsWith('.') && name.includes('.tmp-'));
}

/** Under the lock: rolls a committed save forward, then removes every staging folder (none is live now). */
async function finishInterruptedCommit(dir: string): Promise<void> {
  const recordPath = nodePath.join(dir, COMMIT_RECORD);
  const text = await fs.readFile(recordPath, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (text !== null) await rollForward(dir, parseRecord(text, recordPath));
  for (const name of await fs.readdir(dir)) {
    if (name.startsWith(STAGING_MARKER)) await fs.rm(nodePath.join(dir, name), { recursive: true, force: true });
  }
}

/** Moves the staged files into place, deletes the stale ones, then the staging folder and the record. Idempotent. */
async function rollForward(dir: string, record: CommitRecord): Promise<void> {
  const staging = nodePath.join(dir, record.staging);
  for (const name of record.files) {
    // Absent from staging means an earlier, interrupted roll-forward already moved it.
    await fs.rename(nodePath.join(staging, name), nodePath.join(dir, name)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }
  for (const name of record.remove) await fs.rm(nodePath.join(dir, name), { recursive: true, force: true });
  await fs.rm(staging, { recursive: true, force: true });
  await syncDirectory(dir);
  await fs.rm(nodePath.join(dir, COMMIT_RECORD), { force: true });
  await syncDirectory(dir);
}

function parseRecord(text: string, path: string): CommitRecord {
  let record: Partial<CommitRecord>;
  try {
    record = JSON.parse(text) as Partial<CommitRecord>;
  } catch (error) {
    throw new Error(`${path}: the commit record of an interrupted save is not valid JSON (${(error as Error).message}); it was not written by Chimera. Remove it and check the folder's files.`);
  }
  const plain = (name: unknown) => typeof name === 'string' && name.length > 0 && !/[\\/]/.test(name) && name !== '.' && name !== '..';
  const ok =
    record?.format === RECORD_FORMAT &&
    record.version === 1 &&
    typeof record.staging === 'string' &&
    record.staging.startsWith(STAGING_MARKER) &&
    plain(record.staging) &&
    Array.isArray(record.files) &&
    record.files.every(plain) &&
    Array.isArray(record.remove) &&
    record.remove.every(plain);
  if (!ok) throw new Error(`${path}: not a Chimera commit record (format ${RECORD_FORMAT} v1 with plain file names); remove it and check the folder's files.`);
  return record as CommitRecord;
}

function orderLast(names: string[], last: string[]): string[] {
  const tail = last.filter((name) => names.includes(name));
  return [...names.filter((name) => !tail.includes(name)), ...tail];
}

/** Identity and last change of a folder: any rename into or out of it changes this. */
// What a commit changes: the version's files (a rename puts a new inode at a name) and the commit record. The
// folder's own mtime would also move with every lock and staging folder, so a reader racing busy savers would
// retry for changes that never touched the version it read.
async function stamp(dir: string): Promise<string> {
  const names = await fs.readdir(dir).catch(() => null);
  if (names === null) return 'missing';
  const kept = names.filter((name) => name === COMMIT_RECORD || !isBookkeeping(name)).sort();
  const parts = await Promise.all(
    kept.map(async (name) => {
      const s = await fs.stat(nodePath.join(dir, name), { bigint: true }).catch(() => null);
      return s ? `${name}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}` : `${name}:gone`;
    }),
  );
  return parts.join('|');
}
