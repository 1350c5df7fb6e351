/**
 * Downloads the files a loader needs from a model repository on the Hugging Face Hub into the shared HF cache
 * (cache-layout.ts) and returns the snapshot folder, which the loaders then read like any local model folder.
 *
 *   const { dir, commit } = await downloadModelFiles('HuggingFaceTB/SmolLM2-135M', { required: ['config.json'], safetensors: true });
 *
 * What is asked of the Hub, through @huggingface/hub: `modelInfo` (GET /api/models/<id>/revision/<rev>: the
 * commit a branch or tag points to, and the file list) and `pathsInfo` (POST /api/models/<id>/paths-info/<commit>:
 * each file's size and ETag). The bytes come from /<id>/resolve/<commit>/<path> through hub-http.ts and
 * download-blob.ts, because the library's own downloaders neither resume an interrupted file nor report progress,
 * and its downloadFileToCacheDir files a blob under the commit that last touched it rather than the revision's
 * commit, which is not where Python looks.
 *
 * A revision already in the cache costs no request: a commit hash is immutable, and a branch or tag is taken
 * from refs/<revision> (pass `refresh: true` to ask the Hub where it points now). HF_HUB_OFFLINE=1 never asks.
 */
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { readSafetensorsIndex } from '../weights/sharded';
import {
  blobPath,
  checkRepoPath,
  checkRevision,
  hubCacheDir,
  inSnapshot,
  isCommitHash,
  isHubRepoId,
  isMarkedMissing,
  linkIntoSnapshot,
  markMissing,
  readRef,
  repoCacheDir,
  snapshotDir,
  writeRef,
  type HubEnv,
} from './cache-layout';
import { downloadBlob } from './download-blob';
import { DownloadProgressDisplay, type DownloadProgressOption } from './download-progress';
import { HubHttpError, openRange } from './hub-http';

/** Which files a loader needs. */
export interface HubFileSelection {
  /** Files the loader cannot work without; a repository lacking one is an error naming what it has. */
  required?: string[];
  /** Files used when the repository has them (the cache remembers their absence, as Python's does). */
  optional?: string[];
  /** The weights: model.safetensors, or model.safetensors.index.json and every shard it names. */
  safetensors?: boolean;
}

/**
 * Options of {@link downloadModelFiles} and the loaders that take a Hub id: revision, cache, endpoint, token, retries
 * and progress.
 */
export interface HubDownloadOptions {
  /** A branch, tag or commit hash (default 'main'). A commit pins the files exactly. */
  revision?: string;
  /** Default: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub (Python's). */
  cacheDir?: string;
  /** The Hub's address (default $HF_ENDPOINT, else https://huggingface.co); a mirror or a test server. */
  endpoint?: string;
  /** An access token for private and gated models (default $HF_TOKEN). It is sent to the endpoint only. */
  token?: string;
  /** Ask the Hub where a branch or tag points now, even when the cache has it (default false). */
  refresh?: boolean;
  /** Use the cache only and never ask the Hub (default: $HF_HUB_OFFLINE is 1/true/yes/on). */
  offline?: boolean;
  /** 'auto' (default) draws a line on an interactive stderr, true always, false never; or a callback. */
  progress?: DownloadProgressOption;
  /** Further attempts after a transfer fails or is cut, each resuming where the last stopped (default 5). */
  retries?: number;
  /** Wait before a retry, times the attempt number (default 1000 ms). */
  retryDelayMs?: number;
  /** A transfer silent for this long is cut and retried (default 60 s). */
  idleTimeoutMs?: number;
  /** Environment variables to read instead of process.env (HF_HUB_CACHE, HF_HOME, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE). */
  env?: HubEnv;
  /** fetch to use (default the global one), e.g. one that goes through a proxy. */
  fetch?: typeof fetch;
}

/**
 * What {@link downloadModelFiles} returns: the cached snapshot folder of the resolved commit and which files it
 * holds.
 */
export interface HubSnapshot {
  /** snapshots/<commit> in the cache: a model folder holding the selected files. */
  dir: string;
  /** The commit hash the revision resolved to. */
  commit: string;
  /** The selected files present in `dir`, relative to it. */
  files: string[];
  /** Files whose bytes this call fetched (empty on a cache hit). */
  downloaded: string[];
  /** True when no request was made. */
  fromCache: boolean;
}

const DEFAULT_ENDPOINT = 'https://huggingface.co';
const SINGLE_WEIGHTS = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';

/** Downloads (or finds in the cache) the selected files of model `repoId` at a revision; see the file comment. */
export async function downloadModelFiles(repoId: string, selection: HubFileSelection, options: HubDownloadOptions = {}): Promise<HubSnapshot> {
  if (!isHubRepoId(repoId)) {
    throw new Error(`hub: ${JSON.stringify(repoId)} is not a model id; expected 'org/name' as in the model page's URL (huggingface.co/org/name)`);
  }
  const env = options.env ?? process.env;
  const revision = checkRevision(options.revision ?? 'main');
  const cacheDir = options.cacheDir ?? hubCacheDir(env);
  const repoDir = repoCacheDir(cacheDir, repoId);
  const offline = options.offline ?? /^(1|true|yes|on)$/i.test(env.HF_HUB_OFFLINE ?? '');
  const at = `${repoId}@${revision}`;

  // 1. The cache, without a request.
  const cachedCommit = options.refresh && !isCommitHash(revision) ? null : await readRef(repoDir, revision);
  const cached = cachedCommit ? await cachedFiles(repoDir, cachedCommit, selection) : null;
  if (cachedCommit && cached?.complete) {
    return { dir: snapshotDir(repoDir, cachedCommit), commit: cachedCommit, files: cached.files, downloaded: [], fromCache: true };
  }
  if (offline) {
    const lacking = cached ? `its snapshot ${cachedCommit} lacks ${cached.lacking.join(', ')}` : `no commit is recorded for '${revision}'`;
    throw new Error(
      `hub: ${at} is not in the cache at ${repoDir} (${lacking}) and offline mode is on (HF_HUB_OFFLINE or { offline: true }); ` +
        'download it once with a network connection, or pass a local model folder',
    );
  }

  // 2. The Hub.
  const endpoint = (options.endpoint ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  const token = options.token ?? (env.HF_TOKEN || undefined);
  const session = new HubSession(repoId, revision, endpoint, token, options.fetch ?? fetch);
  const hub = await import('@huggingface/hub');
  const info = await session.explain(
    () =>
      hub.modelInfo({
        name: repoId,
        revision,
        hubUrl: endpoint,
        accessToken: token,
        fetch: session.fetch,
        additionalFields: ['sha', 'filePaths'],
      }) as Promise<{ sha?: unknown; filePaths?: string[] }>,
    'read',
  );
  const commit = String(info.sha ?? '');
  if (!isCommitHash(commit)) throw new Error(`hub: ${endpoint} answered for ${at} without a commit hash (sha: ${JSON.stringify(info.sha)})`);
  await writeRef(repoDir, revision, commit);
  const available = new Set(info.filePaths ?? []);
  const plan = planFiles(selection, available, `${at} (commit ${commit}) on ${endpoint}`);
  for (const path of plan.absent) await markMissing(repoDir, commit, path);

  const progress = new DownloadProgressDisplay({ progress: options.progress, env });
  const transfer = new Transfer(session, repoDir, nodePath.join(cacheDir, '.locks', nodePath.basename(repoDir)), commit, progress, {
    retries: options.retries ?? 5,
    retryDelayMs: options.retryDelayMs ?? 1000,
    idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
  });
  try {
    const files = [...plan.files];
    await transfer.fetch(plan.files, async () => hub.pathsInfo({ repo: repoId, paths: plan.files, revision: commit, hubUrl: endpoint, accessToken: token, fetch: session.fetch }));
    if (plan.index) {
      const shards = await shardsOf(nodePath.join(snapshotDir(repoDir, commit), INDEX));
      const lacking = shards.filter((s) => !available.has(s));
      if (lacking.length) {
        throw new Error(`hub: ${at} (commit ${commit}): ${INDEX} names shards the repository does not have: ${lacking.slice(0, 5).join(', ')}`);
      }
      files.push(...shards);
      await transfer.fetch(shards, async () => hub.pathsInfo({ repo: repoId, paths: shards, revision: commit, hubUrl: endpoint, accessToken: token, fetch: session.fetch }));
    }
    return { dir: snapshotDir(repoDir, commit), commit, files, downloaded: transfer.downloaded, fromCache: false };
  } finally {
    progress.finish();
  }
}

/** What the cache holds of a selection at a commit: complete, or which files it lacks. */
async function cachedFiles(repoDir: string, commit: string, selection: HubFileSelection): Promise<{ complete: boolean; files: string[]; lacking: string[] }> {
  const files: string[] = [];
  const lacking: string[] = [];
  for (const path of selection.required ?? []) ((await inSnapshot(repoDir, commit, path)) ? files : lacking).push(path);
  for (const path of selection.optional ?? []) {
    if (await inSnapshot(repoDir, commit, path)) files.push(path);
    else if (!(await isMarkedMissing(repoDir, commit, path))) lacking.push(path);
  }
  if (selection.safetensors) {
    if (await inSnapshot(repoDir, commit, INDEX)) {
      files.push(INDEX);
      const shards = await shardsOf(nodePath.join(snapshotDir(repoDir, commit), INDEX)).catch(() => null);
      if (!shards) lacking.push(`a readable ${INDEX}`);
      for (const shard of shards ?? []) ((await inSnapshot(repoDir, commit, shard)) ? files : lacking).push(shard);
    } else if (await inSnapshot(repoDir, commit, SINGLE_WEIGHTS)) files.push(SINGLE_WEIGHTS);
    else lacking.push(`${SINGLE_WEIGHTS} or ${INDEX}`);
  }
  return { complete: lacking.length === 0, files, lacking };
}

/** The files to fetch first (the index before its shards), the optional ones the repository lacks, and errors. */
function planFiles(selection: HubFileSelection, available: Set<string>, where: string): { files: string[]; absent: string[]; index: boolean } {
  const files: string[] = [];
  const absent: string[] = [];
  const lacking: string[] = [];
  for (const path of selection.required ?? []) (available.has(checkRepoPath(path, 'hub')) ? files : lacking).push(path);
  for (const path of selection.optional ?? []) (available.has(checkRepoPath(path, 'hub')) ? files : absent).push(path);
  let index = false;
  if (selection.safetensors) {
    if (available.has(INDEX)) {
      files.push(INDEX);
      index = true;
    } else if (available.has(SINGLE_WEIGHTS)) files.push(SINGLE_WEIGHTS);
    else lacking.push(`${SINGLE_WEIGHTS} or ${INDEX}`);
  }
  if (lacking.length) {
    const listed = [...available].sort();
    const torch = listed.filter((f) => /^pytorch_model.*\.bin$|\.pt$|\.pth$/.test(f));
    throw new Error(
      `hub: ${where} has no ${lacking.join(', ')}; it holds ${listed.length ? listed.slice(0, 20).join(', ') + (listed.length > 20 ? ', ...' : '') : 'no files'}. ` +
        (torch.length
          ? 'Its weights are PyTorch pickles, which are not read here: convert them once with Python ' +
            '(from_pretrained(id).save_pretrained(dir, safe_serialization=True)) and pass the folder, or pick a revision with safetensors.'
          : 'Check that the id names the model itself (not a dataset or a Space) and the revision.'),
    );
  }
  return { files, absent, index };
}

async function shardsOf(indexPath: string): Promise<string[]> {
  const { weightMap } = await readSafetensorsIndex(indexPath);
  return [...new Set(Object.values(weightMap))].map((f) => checkRepoPath(f, indexPath));
}

/** The Hub endpoint for one call: the fetch the library uses, and errors turned into advice. */
class HubSession {
  /** The X-Error-Code of the last failed response (the library's errors do not keep it). */
  private lastErrorCode: string | null = null;

  constructor(
    readonly repoId: string,
    readonly revision: string,
    readonly endpoint: string,
    readonly token: string | undefined,
    private readonly baseFetch: typeof fetch,
  ) {}

  readonly fetch: typeof fetch = async (input, init) => {
    const response = await this.baseFetch(input, { ...init, signal: init?.signal ?? AbortSignal.timeout(60_000) });
    if (!response.ok) this.lastErrorCode = response.headers.get('x-error-code');
    return response;
  };

  /** Runs a metadata call; a failure becomes an error saying what was asked, what the Hub said and what to check. */
  async explain<T>(call: () => Promise<T>, doing: string): Promise<T> {
    try {
      return await call();
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode ?? (error instanceof HubHttpError ? error.status : undefined);
      throw new Error(this.advice(doing, status, this.lastErrorCode, describe(error)), { cause: error });
    }
  }

  advice(doing: string, status: number | undefined, code: string | null, said: string): string {
    const head = `hub: could not ${doing} model '${this.repoId}' at revision '${this.revision}' on ${this.endpoint}`;
    if (status === undefined) {
      return `${head}: ${said}. Check the network connection and the endpoint (HF_ENDPOINT), or set HF_HUB_OFFLINE=1 to use the cache only`;
    }
    if (code === 'RevisionNotFound') {
      return `${head}: the repository has no revision '${this.revision}' (${status}). Check the branch, tag or commit name on the model's "Files and versions" page`;
    }
    if (code === 'GatedRepo' || (status === 403 && this.token)) {
      return `${head}: access denied (${status}: ${said}). The model is gated or private: accept its terms on ${this.endpoint}/${this.repoId} with the account whose token HF_TOKEN holds`;
    }
    if (status === 404 || status === 401 || code === 'RepoNotFound') {
      return (
        `${head}: not found (${status}: ${said}). Check the id (org/name, as in the URL ${this.endpoint}/${this.repoId}) and the revision; ` +
        (this.token ? 'the token in HF_TOKEN may lack access to it' : 'a private or gated model needs a token in HF_TOKEN')
      );
    }
    return `${head}: ${status} (${said}). Try again later; HF_HUB_OFFLINE=1 uses only what the cache holds`;
  }
}

/** Fetches files of one commit into the cache, with one progress line over all of them. */
class Transfer {
  readonly downloaded: string[] = [];
  private doneBefore = 0;
  private total = 0;

  constructor(
    private readonly session: HubSession,
    private readonly repoDir: string,
    private readonly lockDir: string,
    private readonly commit: string,
    private readonly progress: DownloadProgressDisplay,
    private readonly limits: { retries: number; retryDelayMs: number; idleTimeoutMs: number },
  ) {}

  /** Links each file into the snapshot, downloading the blobs the cache lacks; `describe` is one paths-info call. */
  async fetch(paths: string[], describeFiles: () => Promise<{ path: string; oid?: string; size: number; lfs?: { oid: string; size: number } }[]>): Promise<void> {
    const wanted: string[] = [];
    for (const path of paths) if (!(await inSnapshot(this.repoDir, this.commit, path))) wanted.push(path);
    if (!wanted.length) return;
    const infos = await this.session.explain(describeFiles, 'list the files of');
    const byPath = new Map(infos.map((i) => [i.path, i]));
    const plan = wanted.map((path) => {
      const info = byPath.get(path);
      if (!info) throw new Error(`hub: ${this.session.endpoint} lists ${path} in ${this.session.repoId} at ${this.commit} but gives no size or ETag for it`);
      // The ETag Python names the blob by: the LFS sha256 when the file is in LFS, else the git blob id.
      const etag = (info.lfs?.oid ?? info.oid ?? '').toLowerCase();
      const size = info.lfs?.size ?? info.size;
      if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(etag) || !Number.isSafeInteger(size) || size < 0) {
        throw new Error(`hub: ${this.session.endpoint} describes ${path} with ETag ${JSON.stringify(etag)} and size ${size}; expected a hash and a byte count`);
      }
      return { path, etag, size };
    });
    for (const { size } of plan) this.total += size;
    for (const { path, etag, size } of plan) {
      const blobExists = await fs.stat(blobPath(this.repoDir, etag)).then((s) => s.isFile(), () => false);
      if (!blobExists) {
        const url = `${this.session.endpoint}/${this.session.repoId}/resolve/${this.commit}/${path.split('/').map(encodeURIComponent).join('/')}`;
        const what = `${path} of ${this.session.repoId} at ${this.commit}`;
        await downloadBlob({
          repoDir: this.repoDir,
          lockDir: this.lockDir,
          etag,
          size,
          open: (offset, signal) => openRange(url, offset, { token: this.session.token, fetch: this.session.fetch, signal }),
          ...this.limits,
          onBytes: (onDisk) =>
            this.progress.update({
              repo: `${this.session.repoId}@${this.commit.slice(0, 10)}`,
              file: path,
              fileBytes: onDisk,
              fileSize: size,
              doneBytes: this.doneBefore + onDisk,
              totalBytes: this.total,
            }),
          what,
        }).catch(async (error: unknown) => {
          if (error instanceof HubHttpError) {
            throw new Error(this.session.advice(`download ${path} of`, error.status, error.errorCode, error.message), { cause: error });
          }
          throw error;
        });
        this.downloaded.push(path);
      }
      this.doneBefore += size;
      await linkIntoSnapshot(this.repoDir, this.commit, path, etag);
    }
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // The library appends ". URL: ..." to its messages; the advice names the model instead.
  return error.message.replace(/\. URL: .*$/, '');
}
