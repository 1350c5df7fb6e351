// @chimera/core/hub against a stand-in Hub on 127.0.0.1 (no network): the cache layout Python's huggingface_hub
// reads, a cache hit without a request, pinned revisions, clear errors, resumed downloads and the progress events.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DownloadProgressDisplay, downloadModelFiles, hubCacheDir, type HubDownloadOptions, type DownloadProgressEvent } from '../src/hub/index';
import { startHubTestServer, type HubTestServer } from '../src/testing/index';

let hub: HubTestServer;
let root: string;
let counter = 0;
/** Each test gets its own cache, and an environment that never points at the machine's real one. */
const options = (extra: HubDownloadOptions = {}): HubDownloadOptions => ({
  endpoint: hub.url,
  env: {},
  retryDelayMs: 5,
  progress: false,
  cacheDir: join(root, `cache-${counter++}`),
  ...extra,
});
const WEIGHTS = { required: ['config.json'], optional: ['tokenizer.json'], safetensors: true };
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const gitOid = (b: Uint8Array) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
/** Deterministic bytes that differ from offset to offset, so a misplaced resume shows. */
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 255);

beforeAll(async () => {
  hub = await startHubTestServer();
  root = mkdtempSync(join(tmpdir(), 'chimera-hub-'));
});
afterAll(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

describe('downloadModelFiles', () => {
  it('fills the HF cache layout on the first call and answers the second from it without a request', async () => {
    const config = '{"model_type":"llama"}\n';
    const weights = bytes(20_000, 1);
    const commit = await hub.addCommit('org/first', { 'config.json': config, 'model.safetensors': weights, 'README.md': '# not needed' });
    const opts = options();
    const start = hub.requests.length;
    const first = await downloadModelFiles('org/first', WEIGHTS, opts);
    const repoDir = join(opts.cacheDir!, 'models--org--first');
    expect(first).toMatchObject({ commit, dir: join(repoDir, 'snapshots', commit), fromCache: false });
    expect(first.downloaded.sort()).toEqual(['config.json', 'model.safetensors']);
    // Python's layout: blobs named by ETag (sha256 for LFS, git blob id otherwise), relative symlinks, the ref.
    expect(readFileSync(join(repoDir, 'blobs', sha256(weights)))).toEqual(Buffer.from(weights));
    expect(readFileSync(join(repoDir, 'blobs', gitOid(Buffer.from(config))), 'utf8')).toBe(config);
    expect(lstatSync(join(first.dir, 'model.safetensors')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(first.dir, 'model.safetensors'))).toBe(`../../blobs/${sha256(weights)}`);
    expect(readFileSync(join(repoDir, 'refs', 'main'), 'utf8')).toBe(commit);
    expect(existsSync(join(repoDir, '.no_exist', commit, 'tokenizer.json'))).toBe(true);
    expect(existsSync(join(first.dir, 'README.md'))).toBe(false); // only what the loader needs
    const calls = hub.since(start).map((r) => `${r.method} ${r.url.split('?')[0]} ${r.status}`);
    expect(calls).toEqual([
      'GET /api/models/org/first/revision/main 200',
      `POST /api/models/org/first/paths-info/${commit} 200`,
      `GET /org/first/resolve/${commit}/config.json 200`,
      `GET /org/first/resolve/${commit}/model.safetensors 302`,
      `GET /cdn/${sha256(weights)} 200`,
    ]);

    const before = hub.requests.length;
    const again = await downloadModelFiles('org/first', WEIGHTS, opts);
    expect(hub.requests.length).toBe(before);
    expect(again).toEqual({ ...first, downloaded: [], fromCache: true, files: ['config.json', 'model.safetensors'] });
  });

  it('pins a commit or a tag, and refresh moves a branch while sharing unchanged blobs', async () => {
    const config = '{"v":1}';
    const old = await hub.addCommit('org/pinned', { 'config.json': config, 'model.safetensors': bytes(3000, 2) }, { tags: ['v1'] });
    const opts = options();
    expect((await downloadModelFiles('org/pinned', WEIGHTS, opts)).commit).toBe(old);
    const newer = await hub.addCommit('org/pinned', { 'config.json': config, 'model.safetensors': bytes(3000, 3) });

    // main is cached at the old commit: no request until refresh asks where it points now.
    let before = hub.requests.length;
    expect((await downloadModelFiles('org/pinned', WEIGHTS, opts)).commit).toBe(old);
    expect(hub.requests.length).toBe(before);
    const refreshed = await downloadModelFiles('org/pinned', WEIGHTS, { ...opts, refresh: true });
    expect(refreshed.commit).toBe(newer);
    expect(refreshed.downloaded).toEqual(['model.safetensors']); // config.json's blob is shared with the old commit
    expect(readFileSync(join(refreshed.dir, 'model.safetensors'))).toEqual(Buffer.from(bytes(3000, 3)));

    // The old commit by hash and by tag, from the cache.
    before = hub.requests.length;
    const byHash = await downloadModelFiles('org/pinned', WEIGHTS, { ...opts, revision: old });
    expect(byHash.fromCache).toBe(true);
    expect(hub.requests.length).toBe(before);
    expect(readFileSync(join(byHash.dir, 'model.safetensors'))).toEqual(Buffer.from(bytes(3000, 2)));
    const byTag = await downloadModelFiles('org/pinned', WEIGHTS, { ...opts, revision: 'v1' });
    expect(byTag.commit).toBe(old);
    expect(readFileSync(join(opts.cacheDir!, 'models--org--pinned', 'refs', 'v1'), 'utf8')).toBe(old);
    // A pinned commit not yet cached is fetched under its own snapshot.
    const fresh = await downloadModelFiles('org/pinned', WEIGHTS, { ...options(), revision: old });
    expect(fresh.commit).toBe(old);
    expect(fresh.fromCache).toBe(false);
  });

  it('downloads a sharded checkpoint: the index, then the shards it names', async () => {
    const index = { metadata: { total_size: 0 }, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } };
    const commit = await hub.addCommit('org/sharded', {
      'config.json': '{}',
      'model.safetensors.index.json': JSON.stringify(index),
      'model-00001-of-00002.safetensors': bytes(500, 4),
      'model-00002-of-00002.safetensors': bytes(700, 5),
    });
    const opts = options();
    const events: DownloadProgressEvent[] = [];
    const got = await downloadModelFiles('org/sharded', WEIGHTS, { ...opts, progress: (e) => events.push({ ...e }) });
    expect(got.files).toEqual(['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(readFileSync(join(got.dir, 'model-00002-of-00002.safetensors'))).toEqual(Buffer.from(bytes(700, 5)));
    const last = events.at(-1)!;
    expect(last).toMatchObject({ repo: `org/sharded@${commit.slice(0, 10)}`, file: 'model-00002-of-00002.safetensors', doneBytes: last.totalBytes });
    // Every file this call fetched; the shards are counted once the index has named them.
    expect(last.totalBytes).toBe(2 + JSON.stringify(index).length + 1200);
    const before = hub.requests.length;
    expect((await downloadModelFiles('org/sharded', WEIGHTS, opts)).fromCache).toBe(true);
    expect(hub.requests.length).toBe(before);

    // The drawn line: nothing on a non-TTY stream under 'auto', the whole line when forced (one update: no rate yet).
    const written: string[] = [];
    const stream = { isTTY: false, columns: 80, write: (text: string) => written.push(text) };
    const quiet = new DownloadProgressDisplay({ stream, env: {}, delayMs: 0 });
    quiet.update(last);
    quiet.finish();
    const disabled = new DownloadProgressDisplay({ stream: { ...stream, isTTY: true }, env: { HF_HUB_DISABLE_PROGRESS_BARS: '1' }, delayMs: 0 });
    disabled.update(last);
    expect(written).toEqual([]);
    const shown = new DownloadProgressDisplay({ progress: true, stream, env: {}, delayMs: 0 });
    shown.update(last);
    shown.finish();
    expect(written.join('')).toMatch(new RegExp(`^\\rdownload org/sharded@${commit.slice(0, 10)} \\| 100% \\| 1\\.3 kB / 1\\.3 kB \\| 0 B/s \\| eta -- \\| model-00002-of-00002\\.safetensors\\x1b\\[K\\n$`));
  });

  it('explains a missing model, a missing revision, a private model and missing weights', async () => {
    await hub.addCommit('org/private', { 'config.json': '{}', 'model.safetensors': bytes(10, 6) });
    hub.setPrivate('org/private');
    await hub.addCommit('org/torch-only', { 'config.json': '{}', 'pytorch_model.bin': bytes(10, 7) });

    const missing = downloadModelFiles('org/nope', WEIGHTS, options());
    await expect(missing).rejects.toThrow(`hub: could not read model 'org/nope' at revision 'main' on ${hub.url}: not found (404: Repository not found)`);
    await expect(missing).rejects.toThrow(/Check the id \(org\/name, as in the URL .*\) and the revision; a private or gated model needs a token in HF_TOKEN/);
    await expect(downloadModelFiles('org/private', WEIGHTS, { ...options(), revision: 'v9' })).rejects.toThrow(/not found \(401/);
    await expect(downloadModelFiles('org/torch-only', WEIGHTS, { ...options(), revision: 'nope' })).rejects.toThrow(
      /the repository has no revision 'nope' \(404\)\. Check the branch, tag or commit name/,
    );
    await expect(downloadModelFiles('org/torch-only', WEIGHTS, options())).rejects.toThrow(
      /has no model\.safetensors or model\.safetensors\.index\.json; it holds config\.json, pytorch_model\.bin\. Its weights are PyTorch pickles/,
    );
    await expect(downloadModelFiles('not an id', WEIGHTS, options())).rejects.toThrow(/expected 'org\/name'/);

    // HF_TOKEN opens the private model; the token goes to the Hub's origin only, never to the CDN it redirects to.
    const start = hub.requests.length;
    const got = await downloadModelFiles('org/private', WEIGHTS, { ...options(), env: { HF_TOKEN: hub.token } });
    expect(got.files).toEqual(['config.json', 'model.safetensors']);
    const sent = hub.since(start).map((r) => [r.origin, r.authorization]);
    expect(sent.filter(([origin]) => origin === 'hub')).toEqual(Array(4).fill(['hub', `Bearer ${hub.token}`]));
    expect(sent.filter(([origin]) => origin === 'cdn')).toEqual([['cdn', null]]);
  });

  it('resumes an interrupted blob from its .incomplete file with a Range request, in the same call or the next', async () => {
    const weights = bytes(50_000, 8);
    const commit = await hub.addCommit('org/flaky', { 'config.json': '{}', 'model.safetensors': weights });
    const blob = `/cdn/${sha256(weights)}`;

    // The connection drops at 20,000 bytes; with no retries the call fails and keeps what arrived.
    const opts = options({ retries: 0 });
    hub.dropNext('org/flaky', commit, 'model.safetensors', 20_000);
    await expect(downloadModelFiles('org/flaky', WEIGHTS, opts)).rejects.toThrow(
      /downloading model\.safetensors of org\/flaky at [0-9a-f]{40} stopped at 20000 of 50000 bytes after 1 attempt\(s\): .*The partial file .*\.incomplete stays; run again to resume/,
    );
    const incomplete = join(opts.cacheDir!, 'models--org--flaky', 'blobs', `${sha256(weights)}.incomplete`);
    expect(statSync(incomplete).size).toBe(20_000);
    let start = hub.requests.length;
    const resumed = await downloadModelFiles('org/flaky', WEIGHTS, opts);
    const transfers = hub.since(start).filter((r) => r.url === blob);
    expect(transfers.map((r) => [r.range, r.status, r.bytes])).toEqual([['bytes=20000-', 206, 30_000]]);
    expect(readFileSync(join(resumed.dir, 'model.safetensors'))).toEqual(Buffer.from(weights));
    expect(existsSync(incomplete)).toBe(false);

    // With retries (the default), the same call resumes after the drop.
    hub.dropNext('org/flaky', commit, 'model.safetensors', 33_333);
    start = hub.requests.length;
    const retried = await downloadModelFiles('org/flaky', WEIGHTS, options());
    const again = hub.since(start).filter((r) => r.url === blob);
    expect(again.map((r) => [r.range, r.bytes])).toEqual([[null, 33_333], ['bytes=33333-', 16_667]]);
    expect(readFileSync(join(retried.dir, 'model.safetensors'))).toEqual(Buffer.from(weights));
  });

  it('refuses a partial file whose bytes do not hash to the ETag, and removes it', async () => {
    const weights = bytes(4000, 9);
    await hub.addCommit('org/damaged', { 'config.json': '{}', 'model.safetensors': weights });
    const opts = options();
    const blobs = join(opts.cacheDir!, 'models--org--damaged', 'blobs');
    mkdirSync(blobs, { recursive: true });
    writeFileSync(join(blobs, `${sha256(weights)}.incomplete`), bytes(1000, 99)); // not the file's first 1000 bytes
    await expect(downloadModelFiles('org/damaged', WEIGHTS, opts)).rejects.toThrow(
      new RegExp(`model\\.safetensors of org/damaged at [0-9a-f]{40} arrived with 4000 bytes but its hash is [0-9a-f]{64}, not the ${sha256(weights)}`),
    );
    expect(existsSync(join(blobs, `${sha256(weights)}.incomplete`))).toBe(false);
    expect((await downloadModelFiles('org/damaged', WEIGHTS, opts)).downloaded).toEqual(['model.safetensors']);
  });

  it('starts a blob over when the server answers a Range request with the whole file', async () => {
    const weights = bytes(6000, 11);
    await hub.addCommit('org/no-ranges', { 'config.json': '{}', 'model.safetensors': weights });
    const opts = options();
    const blobs = join(opts.cacheDir!, 'models--org--no-ranges', 'blobs');
    mkdirSync(blobs, { recursive: true });
    writeFileSync(join(blobs, `${sha256(weights)}.incomplete`), weights.subarray(0, 2500));
    hub.ignoreRanges = true;
    try {
      const start = hub.requests.length;
      const got = await downloadModelFiles('org/no-ranges', WEIGHTS, opts);
      expect(hub.since(start).filter((r) => r.url.startsWith('/cdn/')).map((r) => [r.range, r.status, r.bytes])).toEqual([['bytes=2500-', 200, 6000]]);
      expect(readFileSync(join(got.dir, 'model.safetensors'))).toEqual(Buffer.from(weights));
    } finally {
      hub.ignoreRanges = false;
    }
  });

  it('offline mode uses the cache and names what is missing; the cache root follows HF_HUB_CACHE / HF_HOME', async () => {
    await hub.addCommit('org/offline', { 'config.json': '{}', 'model.safetensors': bytes(100, 10) });
    const opts = options();
    await expect(downloadModelFiles('org/offline', WEIGHTS, { ...opts, env: { HF_HUB_OFFLINE: '1' } })).rejects.toThrow(
      /org\/offline@main is not in the cache at .*models--org--offline \(no commit is recorded for 'main'\) and offline mode is on/,
    );
    await downloadModelFiles('org/offline', WEIGHTS, opts);
    const before = hub.requests.length;
    expect((await downloadModelFiles('org/offline', WEIGHTS, { ...opts, offline: true })).fromCache).toBe(true);
    expect(hub.requests.length).toBe(before);

    expect(hubCacheDir({ HF_HUB_CACHE: '/a', HF_HOME: '/b' })).toBe('/a');
    expect(hubCacheDir({ HF_HOME: '/b' })).toBe(join('/b', 'hub'));
    expect(hubCacheDir({ XDG_CACHE_HOME: '/c' })).toBe(join('/c', 'huggingface', 'hub'));
  });
});
