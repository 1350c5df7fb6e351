/**
 * The Hugging Face Hub cache, laid out as huggingface_hub (Python) lays it out, so that Python and Chimera read
 * and fill the same files (huggingface_hub `file_download.py`, `constants.py`):
 *
 *   <cache>/models--<org>--<name>/blobs/<etag>               file contents, named by the Hub's ETag: the sha256 of
 *                                                            an LFS file, the git blob id of any other file
 *   <cache>/models--<org>--<name>/blobs/<etag>.incomplete    a download under way or interrupted (resumed from here)
 *   <cache>/models--<org>--<name>/snapshots/<commit>/<path>  relative symlinks into blobs/ (copies where the file
 *                                                            system has no symlinks)
 *   <cache>/models--<org>--<name>/refs/<revision>            the commit a branch or tag pointed to when last asked
 *   <cache>/models--<org>--<name>/.no_exist/<commit>/<path>  empty markers: the repository has no such file there
 *
 * The cache root is $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { writeFileAtomic } from '../weights/atomic';

export type HubEnv = Record<string, string | undefined>;

/** The cache root Python's huggingface_hub would use under `env`. */
export function hubCacheDir(env: HubEnv = process.env): string {
  const explicit = env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE;
  if (explicit) return explicit;
  const home = env.HF_HOME || nodePath.join(env.XDG_CACHE_HOME || nodePath.join(os.homedir(), '.cache'), 'huggingface');
  return nodePath.join(home, 'hub');
}

/** `org/name`, as on the model's page: letters, digits, '-', '_' and '.', no '--' or '..' (the Hub's rules). */
const REPO_ID = /^[A-Za-z0-9][\w.-]{0,95}\/[A-Za-z0-9][\w.-]{0,95}$/;

/** Whether `text` has the shape of a Hub model id (`org/name`). It says nothing about whether the model exists. */
export function isHubRepoId(text: string): boolean {
  return REPO_ID.test(text) && !text.includes('--') && !text.includes('..') && !/\.$/.test(text);
}

/** The repository's folder in the cache: `models--org--name`. */
export function repoCacheDir(cacheDir: string, repoId: string): string {
  return nodePath.join(cacheDir, `models--${repoId.split('/').join('--')}`);
}

const COMMIT = /^[0-9a-f]{40}$/;

export function isCommitHash(revision: string): boolean {
  return COMMIT.test(revision);
}

/**
 * A path inside the repository, as the Hub and index files name them: relative, '/'-separated, no '.' or '..'
 * segment. Anything else (a hostile index pointing outside the snapshot) is refused before it becomes a file name.
 */
export function checkRepoPath(path: string, source: string): string {
  const parts = path.split('/');
  if (!path || path.includes('\\') || path.includes('\0') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new Error(`${source}: ${JSON.stringify(path.slice(0, 200))} is not a file path inside the repository (relative, '/'-separated, no '..')`);
  }
  return path;
}

/** Branch and tag names may hold '/' (refs/pr/1) but no empty, '.' or '..' segment, since they become paths. */
export function checkRevision(revision: string): string {
  if (typeof revision !== 'string' || revision.length > 256) {
    throw new Error(`hub: revision must be a branch, tag or commit name, got ${JSON.stringify(revision)?.slice(0, 80)}`);
  }
  checkRepoPath(revision, 'hub: revision');
  return revision;
}

export function snapshotDir(repoDir: string, commit: string): string {
  return nodePath.join(repoDir, 'snapshots', commit);
}

/** The commit `revision` resolved to when last asked, or null (a commit hash is its own answer). */
export async function readRef(repoDir: string, revision: string): Promise<string | null> {
  if (isCommitHash(revision)) return revision;
  const text = await fs.readFile(nodePath.join(repoDir, 'refs', revision), 'utf8').catch(() => null);
  const commit = text?.trim() ?? null;
  return commit && isCommitHash(commit) ? commit : null;
}

/** Records what `revision` points to; Python writes the bare hash, so do we. */
export async function writeRef(repoDir: string, revision: string, commit: string): Promise<void> {
  if (isCommitHash(revision)) return;
  const path = nodePath.join(repoDir, 'refs', revision);
  await fs.mkdir(nodePath.dirname(path), { recursive: true });
  if ((await fs.readFile(path, 'utf8').catch(() => null)) === commit) return;
  await writeFileAtomic(path, commit);
}

/** Whether the snapshot holds `path` (following the symlink: a dangling link to a removed blob does not count). */
export async function inSnapshot(repoDir: string, commit: string, path: string): Promise<boolean> {
  return fs.stat(nodePath.join(snapshotDir(repoDir, commit), path)).then(
    (s) => s.isFile(),
    () => false,
  );
}

export function blobPath(repoDir: string, etag: string): string {
  return nodePath.join(repoDir, 'blobs', etag);
}

/** Points snapshots/<commit>/<path> at blobs/<etag> with a relative symlink (a copy where symlinks fail). */
export async function linkIntoSnapshot(repoDir: string, commit: string, path: string, etag: string): Promise<void> {
  const pointer = nodePath.join(snapshotDir(repoDir, commit), path);
  const blob = blobPath(repoDir, etag);
  await fs.mkdir(nodePath.dirname(pointer), { recursive: true });
  await fs.rm(pointer, { force: true });
  try {
    await fs.symlink(nodePath.relative(nodePath.dirname(pointer), blob), pointer);
  } catch (error) {
    // Windows without developer mode: Python copies too.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return;
    await fs.copyFile(blob, pointer);
  }
}

function missingMarker(repoDir: string, commit: string, path: string): string {
  return nodePath.join(repoDir, '.no_exist', commit, path);
}

/** Remembers that the repository has no `path` at `commit`, so a later cache check needs no request. */
export async function markMissing(repoDir: string, commit: string, path: string): Promise<void> {
  const marker = missingMarker(repoDir, commit, path);
  await fs.mkdir(nodePath.dirname(marker), { recursive: true });
  await fs.writeFile(marker, '');
}

export async function isMarkedMissing(repoDir: string, commit: string, path: string): Promise<boolean> {
  return fs.stat(missingMarker(repoDir, commit, path)).then(
    () => true,
    () => false,
  );
}
