/**
 * A stand-in for the Hugging Face Hub on 127.0.0.1, for offline tests of `@chimera/core/hub` and the loaders that
 * use it. It answers the routes @huggingface/hub and the downloader call, the way the Hub does:
 *
 *   GET  /api/models/<org>/<name>/revision/<rev>    { id, sha, siblings: [{ rfilename }] }; 404 + X-Error-Code
 *                                                    RepoNotFound / RevisionNotFound; 401 for a private repository
 *   POST /api/models/<org>/<name>/paths-info/<rev>  [{ type, path, oid, size, lfs? }] for the paths that exist
 *   GET  /<org>/<name>/resolve/<rev>/<path>         a small file directly (ETag = git blob id); an LFS file
 *                                                    (*.safetensors by default) as a 302 to <cdnUrl>/cdn/<sha256>,
 *                                                    with X-Repo-Commit, X-Linked-Etag and X-Linked-Size
 *   GET  <cdnUrl>/cdn/<sha256>                      the bytes, honouring `Range: bytes=N-` with a 206; the CDN is a
 *                                                    second port, so another origin, as the Hub's is
 *
 * Every request is logged (`requests`), and `dropNext` cuts the connection once in the middle of a file.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as nodePath from 'node:path';

/** One request the stand-in Hub answered, as logged in {@link HubTestServer.requests}. */
export interface HubTestRequest {
  /** Which server answered: the Hub's origin or the CDN's. */
  origin: 'hub' | 'cdn';
  /** HTTP method. */
  method: string;
  /** Path and query as received. */
  url: string;
  /** The Range header, or null. */
  range: string | null;
  /** The Authorization header, or null. */
  authorization: string | null;
  /** HTTP status of the answer. */
  status: number;
  /** Body bytes of a file sent (0 for API answers). */
  bytes: number;
}

/** Options of {@link HubTestServer.addCommit}. */
export interface HubTestCommitOptions {
  /** Branch the commit goes on (default 'main'); it moves the branch. */
  branch?: string;
  /** Tags pointing at the new commit. */
  tags?: string[];
  /** Which paths are LFS files (default: names ending in .safetensors or .bin). */
  lfs?: (path: string) => boolean;
}

interface StoredFile {
  content: Buffer;
  gitOid: string;
  sha256: string;
  lfs: boolean;
}

interface Repo {
  commits: Map<string, Map<string, StoredFile>>;
  refs: Map<string, string>;
  private: boolean;
}

/** A running stand-in Hub (see the file comment): add commits, count requests, cut a transfer once. */
export class HubTestServer {
  /** Every request answered, in order. */
  readonly requests: HubTestRequest[] = [];
  /** The token a private repository needs (`Authorization: Bearer <token>`). */
  token = 'hf_test_token';
  /** Answer every byte request with the whole file (200), as a server without Range support would. */
  ignoreRanges = false;
  private readonly repos = new Map<string, Repo>();
  private readonly blobs = new Map<string, Buffer>();
  private drops: { sha256: string; afterBytes: number }[] = [];
  private counter = 0;

  constructor(
    private readonly servers: Server[],
    /** The Hub's origin (`http://127.0.0.1:<port>`): the endpoint to give the downloader. */
    readonly url: string,
    /** Where LFS files are redirected to: another origin. */
    readonly cdnUrl: string,
  ) {}

  /** Adds a commit of `files` (path -> bytes or text, or a folder read recursively) and returns its hash. */
  async addCommit(repoId: string, files: Record<string, Uint8Array | string> | string, options: HubTestCommitOptions = {}): Promise<string> {
    const entries = typeof files === 'string' ? await readFolder(files) : files;
    const isLfs = options.lfs ?? ((path: string) => /\.(safetensors|bin)$/.test(path));
    const stored = new Map<string, StoredFile>();
    for (const [path, data] of Object.entries(entries)) {
      const content = Buffer.from(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
      const sha256 = createHash('sha256').update(content).digest('hex');
      const gitOid = createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
      stored.set(path, { content, gitOid, sha256, lfs: isLfs(path) });
      this.blobs.set(sha256, content);
    }
    const commit = createHash('sha1').update(`${repoId}:${this.counter++}:${[...stored.keys()].join(',')}`).digest('hex');
    const repo = this.repos.get(repoId) ?? { commits: new Map(), refs: new Map(), private: false };
    this.repos.set(repoId, repo);
    repo.commits.set(commit, stored);
    repo.refs.set(options.branch ?? 'main', commit);
    for (const tag of options.tags ?? []) repo.refs.set(tag, commit);
    return commit;
  }

  /** Makes a repository answer only requests carrying `token`. */
  setPrivate(repoId: string, isPrivate = true): void {
    const repo = this.repos.get(repoId);
    if (!repo) throw new Error(`HubTestServer: no repository ${repoId}; add a commit first`);
    repo.private = isPrivate;
  }

  /** The next transfer of `path` at `commit` of `repoId` is cut after `afterBytes` bytes of the file, once. */
  dropNext(repoId: string, commit: string, path: string, afterBytes: number): void {
    const file = this.repos.get(repoId)?.commits.get(commit)?.get(path);
    if (!file) throw new Error(`HubTestServer: ${repoId}@${commit} has no ${path}`);
    this.drops.push({ sha256: file.sha256, afterBytes });
  }

  /** The requests logged since `from` (an index into `requests`). */
  since(from: number): HubTestRequest[] {
    return this.requests.slice(from);
  }

  /** Stops both servers (the Hub and its CDN). */
  close(): Promise<void> {
    return Promise.all(
      this.servers.map(
        (server) =>
          new Promise<void>((resolve, reject) => {
            server.closeAllConnections();
            server.close((error) => (error ? reject(error) : resolve()));
          }),
      ),
    ).then(() => undefined);
  }

  /** @internal */
  async handle(origin: 'hub' | 'cdn', request: IncomingMessage, response: ServerResponse): Promise<void> {
    const log: HubTestRequest = {
      origin,
      method: request.method ?? 'GET',
      url: request.url ?? '/',
      range: request.headers.range ?? null,
      authorization: request.headers.authorization ?? null,
      status: 0,
      bytes: 0,
    };
    this.requests.push(log);
    const path = decodeURIComponent(new URL(log.url, this.url).pathname);
    const json = (status: number, body: unknown, errorCode?: string) => {
      log.status = status;
      response.writeHead(status, { 'Content-Type': 'application/json', ...(errorCode ? { 'X-Error-Code': errorCode } : {}) });
      response.end(JSON.stringify(body));
    };
    const api = origin === 'cdn' ? null : /^\/api\/models\/([^/]+\/[^/]+)\/(revision|paths-info)\/(.+)$/.exec(path);
    const resolve = origin === 'cdn' ? null : /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const cdn = origin === 'hub' ? null : /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (api || resolve) {
      const [repoId, revision] = api ? [api[1]!, api[3]!] : [resolve![1]!, resolve![2]!];
      const repo = this.repos.get(repoId);
      if (!repo || (repo.private && log.authorization !== `Bearer ${this.token}`)) {
        // The Hub does not reveal whether a private repository exists.
        return json(repo ? 401 : 404, { error: 'Repository not found' }, 'RepoNotFound');
      }
      const commit = repo.commits.has(revision) ? revision : repo.refs.get(revision);
      const files = commit ? repo.commits.get(commit) : undefined;
      if (!commit || !files) return json(404, { error: `Invalid rev id: ${revision}` }, 'RevisionNotFound');
      if (api?.[2] === 'revision') {
        return json(200, { _id: repoId, id: repoId, sha: commit, private: repo.private, siblings: [...files.keys()].map((rfilename) => ({ rfilename })) });
      }
      if (api) {
        const body = JSON.parse(await readBody(request)) as { paths: string[] };
        return json(
          200,
          body.paths
            .filter((p) => files.has(p))
            .map((p) => {
              const f = files.get(p)!;
              return { type: 'file', path: p, oid: f.gitOid, size: f.content.length, ...(f.lfs ? { lfs: { oid: f.sha256, size: f.content.length, pointerSize: 134 } } : {}) };
            }),
        );
      }
      const file = files.get(resolve![3]!);
      if (!file) return json(404, { error: 'Entry not found' }, 'EntryNotFound');
      const headers = { 'X-Repo-Commit': commit, ETag: `"${file.lfs ? file.sha256 : file.gitOid}"` };
      if (file.lfs) {
        log.status = 302;
        response.writeHead(302, { ...headers, 'X-Linked-Etag': `"${file.sha256}"`, 'X-Linked-Size': String(file.content.length), Location: `${this.cdnUrl}/cdn/${file.sha256}` });
        return void response.end();
      }
      return this.sendBytes(request, response, log, file.content, file.sha256, headers);
    }
    if (cdn && this.blobs.has(cdn[1]!)) {
      return this.sendBytes(request, response, log, this.blobs.get(cdn[1]!)!, cdn[1]!, { ETag: `"${cdn[1]}"` });
    }
    json(404, { error: `no route for ${log.method} ${path}` });
  }

  private sendBytes(request: IncomingMessage, response: ServerResponse, log: HubTestRequest, content: Buffer, sha256: string, headers: Record<string, string>): void {
    const range = this.ignoreRanges ? null : /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? '');
    let start = 0;
    let end = content.length - 1;
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), end) : end;
      if (start > end) {
        log.status = 416;
        response.writeHead(416, { 'Content-Range': `bytes */${content.length}` });
        return void response.end();
      }
    }
    log.status = range ? 206 : 200;
    response.writeHead(log.status, {
      ...headers,
      'Content-Length': String(end - start + 1),
      'Accept-Ranges': 'bytes',
      ...(range ? { 'Content-Range': `bytes ${start}-${end}/${content.length}` } : {}),
    });
    if (request.method === 'HEAD') return void response.end();
    const body = content.subarray(start, end + 1);
    const drop = this.drops.findIndex((d) => d.sha256 === sha256 && d.afterBytes > start && d.afterBytes <= end);
    if (drop >= 0) {
      const { afterBytes } = this.drops.splice(drop, 1)[0]!;
      log.bytes = afterBytes - start;
      // Send part of the promised length, then cut the connection, as a network failure would.
      response.write(body.subarray(0, afterBytes - start), () => response.socket?.destroy());
      return;
    }
    log.bytes = body.length;
    response.end(body);
  }
}

/** Starts a HubTestServer (the Hub and its CDN) on 127.0.0.1 at free ports. Close it when done. */
export async function startHubTestServer(): Promise<HubTestServer> {
  let hub: HubTestServer | undefined;
  const serve = (origin: 'hub' | 'cdn') =>
    createServer((request, response) => {
      hub!.handle(origin, request, response).catch((error: Error) => {
        if (!response.headersSent) response.writeHead(500, { 'Content-Type': 'application/json' });
        response.end(JSON.stringify({ error: error.message }));
      });
    });
  const servers = [serve('hub'), serve('cdn')];
  const urls: string[] = [];
  for (const server of servers) {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    urls.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  }
  hub = new HubTestServer(servers, urls[0]!, urls[1]!);
  return hub;
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function readFolder(dir: string, prefix = ''): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue; // staging folders and locks of a save are not part of the model
    const full = nodePath.join(dir, entry.name);
    if (entry.isDirectory()) Object.assign(out, await readFolder(full, `${prefix}${entry.name}/`));
    else out[`${prefix}${entry.name}`] = await fs.readFile(full);
  }
  return out;
}
