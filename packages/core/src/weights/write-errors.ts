/**
 * Failed writes, told in the caller's terms: the file or folder the caller asked for (never a hidden temporary
 * name), what went wrong in words, and what to do. The file-system error stays on `cause` (and its code on
 * `code`). Node's recursive mkdir reports a read-only ancestor as ENOENT, so that case is probed again here.
 */
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';

/** A save that could not write its files; the previous version at `path`, if any, is left as it was. */
export class WriteError extends Error {
  constructor(
    message: string,
    /** The file or folder the caller asked to write. */
    readonly path: string,
    /** The file-system error code (ENOSPC, EROFS, EACCES, ...), when there was one. */
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WriteError';
  }
}

/**
 * Describes a failed write of `target` (a file or folder path as the caller gave it). `what` names the
 * operation for the message ('save', 'write the checkpoint', ...); `stage` says whether the new version was
 * already committed. Errors that are not the file system's (a bug, a tensor error) and already-described
 * ones pass through unchanged.
 */
export async function describeWriteFailure(
  error: unknown,
  target: string,
  what = 'save',
  stage: 'before-commit' | 'after-commit' = 'before-commit',
): Promise<Error> {
  if (error instanceof WriteError) {
    if (error.path === target) return error;
    // Described for a file inside the save (a staged shard): tell it again for the target the caller named.
    error = error.cause ?? error;
  }
  if (!(error instanceof Error)) return new WriteError(`${what} ${target} failed: ${String(error)}`, target, undefined, { cause: error });
  const code = (error as NodeJS.ErrnoException).code;
  const intact =
    stage === 'before-commit'
      ? 'Nothing was replaced: the previous version, if any, is intact.'
      : 'The new version is recorded in full; the next save or load of it finishes moving it into place.';
  const reason = await explain(code, target, error);
  if (reason === null) return error; // not a file-system error: keep it as it is (a bug, a tensor error, ...)
  return new WriteError(`cannot ${what} ${target}: ${reason} ${intact}`, target, code, { cause: error });
}

async function explain(code: string | undefined, target: string, error: Error): Promise<string | null> {
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return `the disk holding ${nodePath.dirname(nodePath.resolve(target))} is full (${code}). Free some space or save elsewhere.`;
    case 'EROFS':
      return `the file system is read-only (EROFS). Save to a writable folder.`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied (${code}). Check the permissions of ${target} and its folder, or save elsewhere.`;
    case 'ENOENT':
      return missingFolder(target);
    case 'ENOTDIR':
    case 'EEXIST':
    case 'EISDIR':
      return `a file or folder is in the way (${code}): ${error.message.replace(/^[A-Z]+: /, '')}. Remove it or choose another path.`;
    case 'EMFILE':
    case 'ENFILE':
      return `too many open files (${code}). Close files elsewhere in the process or raise the limit (ulimit -n).`;
    case 'EIO':
      return `the device reported an I/O error (EIO). Check the disk.`;
    default:
      return code && /^E[A-Z]+$/.test(code) ? `${error.message}` : null;
  }
}

/**
 * ENOENT while writing: either a folder really is missing, or (recursive mkdir) an ancestor is read-only or
 * not ours. Probe the nearest existing ancestor to tell which.
 */
async function missingFolder(target: string): Promise<string> {
  const ancestor = await nearestExisting(target);
  try {
    await fs.access(ancestor, fs.constants?.W_OK ?? 2);
  } catch (probe) {
    const code = (probe as NodeJS.ErrnoException).code;
    if (code === 'EROFS') return `${ancestor} is on a read-only file system (EROFS), so the folder cannot be created. Save to a writable folder.`;
    if (code === 'EACCES' || code === 'EPERM') return `permission denied (${code}) creating folders in ${ancestor}. Check its permissions or save elsewhere.`;
  }
  const folder = nodePath.dirname(nodePath.resolve(target));
  return `the folder ${folder} does not exist (ENOENT; the nearest existing folder is ${ancestor}). Create it first or choose another path.`;
}

async function nearestExisting(target: string): Promise<string> {
  let dir = nodePath.resolve(target);
  for (;;) {
    if (await fs.stat(dir).then(() => true, () => false)) return dir;
    const parent = nodePath.dirname(dir);
    if (parent === dir) return dir;
    dir = parent;
  }
}
