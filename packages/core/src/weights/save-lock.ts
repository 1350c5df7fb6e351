/**
 * One save at a time per target, across async calls in this process and across processes: a lock file created
 * exclusively, holding the owner's pid. A lock whose owner no longer runs (killed mid-save) is taken over; one
 * held by a live process is waited for. Temporary names carry the writer's pid for the same reason, so a later
 * save or load can tell an abandoned leftover from a save still under way.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';

/** Whether a process with this pid runs (on this machine). */
export function processIsAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A unique suffix for a temporary name that records who made it: `<pid>-<random hex>`. */
export function ownedSuffix(): string {
  return `${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** The pid recorded in a name made with ownedSuffix (the first `-<digits>-<hex>` group after `marker`). */
export function ownerOf(name: string, marker: string): number | null {
  const at = name.indexOf(marker);
  if (at < 0) return null;
  const match = /^(\d+)-[0-9a-f]+/.exec(name.slice(at + marker.length));
  return match ? Number(match[1]) : null;
}

export interface SaveLockOptions {
  /** Give up waiting for another live process's save after this long (default 10 minutes). */
  timeoutMs?: number;
  /** Runs in this save's turn, before the lock file is made (e.g. creating the folder the lock lives in). */
  prepare?: () => Promise<void>;
}

const queues = new Map<string, Promise<void>>();
/** A lock without a pid (only where hard links are missing, while its creator writes it) is stale after this. */
const EMPTY_LOCK_GRACE_MS = 2000;

/**
 * Runs `body` holding the lock at `lockPath`; `target` names what is being saved, for messages. Saves called
 * in one process take their turns in call order (the queue is joined before the first await), so the last
 * call's version is the one that stays.
 */
export async function withSaveLock<T>(lockPath: string, target: string, body: () => Promise<T>, options: SaveLockOptions = {}): Promise<T> {
  const key = nodePath.resolve(lockPath);
  const previous = queues.get(key) ?? Promise.resolve();
  let release!: () => void;
  const turn = previous.then(() => new Promise<void>((resolve) => (release = resolve)));
  queues.set(key, turn);
  await previous;
  try {
    await options.prepare?.();
    await acquire(key, target, options.timeoutMs ?? 600_000);
    try {
      return await body();
    } finally {
      await fs.rm(key, { force: true }).catch(() => undefined);
    }
  } finally {
    release();
    if (queues.get(key) === turn) queues.delete(key);
  }
}

async function acquire(lockPath: string, target: string, timeoutMs: number): Promise<void> {
  const started = Date.now();
  let wait = 20;
  for (;;) {
    if (await tryCreate(lockPath)) return;
    const owner = await readOwner(lockPath);
    if (owner === 'gone') continue;
    if (owner === 'stale') {
      await breakStaleLock(lockPath);
      continue;
    }
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `cannot save ${target}: another process (pid ${owner}) has been saving into it for ${Math.round((Date.now() - started) / 1000)} s ` +
          `(lock ${lockPath}). Wait for it to finish, or stop it; a lock whose process has ended is taken over automatically.`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, 100);
  }
}

/**
 * Creates the lock holding our pid, or returns false when it exists. The pid goes into a temporary first and
 * the lock appears by link(), so a lock file is never seen empty, even when its creator is killed.
 */
async function tryCreate(lockPath: string): Promise<boolean> {
  const temporary = `${lockPath}.tmp-${ownedSuffix()}`;
  await fs.writeFile(temporary, `${process.pid}\n`, { flag: 'wx' });
  try {
    await fs.link(temporary, lockPath);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    // A file system without hard links: exclusive create, briefly empty.
    return fs.writeFile(lockPath, `${process.pid}\n`, { flag: 'wx' }).then(
      () => true,
      (fallback: NodeJS.ErrnoException) => {
        if (fallback.code === 'EEXIST') return false;
        throw fallback;
      },
    );
  } finally {
    await fs.rm(temporary, { force: true });
  }
}

/** The live owner's pid, 'stale' when the owner is gone, or 'gone' when the lock vanished meanwhile. */
async function readOwner(lockPath: string): Promise<number | 'stale' | 'gone'> {
  let text: string;
  let age: number;
  try {
    [text, age] = await Promise.all([fs.readFile(lockPath, 'utf8'), fs.stat(lockPath).then((s) => Date.now() - s.mtimeMs)]);
  } catch {
    return 'gone';
  }
  const pid = Number(text.trim());
  if (text.trim() === '' || !Number.isSafeInteger(pid)) return age > EMPTY_LOCK_GRACE_MS ? 'stale' : 0;
  // Our own pid is a live owner too: another copy of this module (an ESM and a CJS build) in this process.
  return processIsAlive(pid) ? pid : 'stale';
}

/** Removes the lock at `lockPath` if its owner no longer runs (a leftover of a killed save). */
export async function removeStaleLock(lockPath: string): Promise<void> {
  if ((await readOwner(lockPath)) === 'stale') await breakStaleLock(lockPath);
}

/**
 * Removes a stale lock without removing a fresh one that a racing process just created: move it aside under a
 * unique name, and put it back if what was moved turns out to belong to a live process.
 */
async function breakStaleLock(lockPath: string): Promise<void> {
  const aside = `${lockPath}.stale-${ownedSuffix()}`;
  try {
    await fs.rename(lockPath, aside);
  } catch {
    return; // someone else moved it first
  }
  const text = (await fs.readFile(aside, 'utf8').catch(() => '')).trim();
  const age = await fs.stat(aside).then((s) => Date.now() - s.mtimeMs, () => Infinity);
  // A fresh empty lock is a racing process's, not yet holding its pid: give it back, as a live owner's.
  const live = text === '' ? age <= EMPTY_LOCK_GRACE_MS : processIsAlive(Number(text));
  if (live) await fs.link(aside, lockPath).catch(() => undefined);
  await fs.rm(aside, { force: true });
}
