/**
 * The byte transfer of a Hub file: one GET of `/<org>/<name>/resolve/<commit>/<path>` from an offset (a Range
 * request past 0), redirects followed by hand so that the token goes only to the Hub's own origin and never to
 * the CDN a large file is redirected to (huggingface_hub does the same), and `Accept-Encoding: identity` so that
 * offsets count the file's bytes, not a compressed stream's.
 */

/** A Hub or CDN answer that was not the file: the status, the Hub's X-Error-Code and the URL, for messages. */
export class HubHttpError extends Error {
  /**
   * @param message What failed and what to do.
   * @param status HTTP status of the answer.
   * @param errorCode The Hub's X-Error-Code header (e.g. `RepoNotFound`), or null.
   * @param url The URL requested.
   */
  constructor(
    message: string,
    readonly status: number,
    readonly errorCode: string | null,
    readonly url: string,
  ) {
    super(message);
    this.name = 'HubHttpError';
  }

  /** Worth another attempt: the server was busy or failing, not refusing. */
  get retryable(): boolean {
    return this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

export interface RangeResponse {
  body: ReadableStream<Uint8Array>;
  /** Where the body starts in the file: the offset asked for, or 0 when the server ignored the Range header. */
  start: number;
}

export interface OpenRangeOptions {
  token?: string;
  fetch: typeof fetch;
  signal?: AbortSignal;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/** GETs `url` from byte `offset` to the end. */
export async function openRange(url: string, offset: number, options: OpenRangeOptions): Promise<RangeResponse> {
  const hubOrigin = new URL(url).origin;
  let current = new URL(url);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers: Record<string, string> = { 'Accept-Encoding': 'identity' };
    if (offset > 0) headers.Range = `bytes=${offset}-`;
    if (options.token && current.origin === hubOrigin) headers.Authorization = `Bearer ${options.token}`;
    const response = await options.fetch(current, { headers, redirect: 'manual', signal: options.signal });
    if (REDIRECTS.has(response.status)) {
      const location = response.headers.get('location');
      await response.body?.cancel();
      if (!location) throw new HubHttpError(`${current} answered ${response.status} without a Location header`, response.status, null, String(current));
      current = new URL(location, current);
      continue;
    }
    if (response.status === 206 && response.body) {
      const range = /^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '');
      const start = range ? Number(range[1]) : NaN;
      if (start !== offset) {
        await response.body.cancel();
        throw new HubHttpError(
          `${current} answered a request for bytes ${offset}- with Content-Range ${JSON.stringify(response.headers.get('content-range'))}`,
          206,
          null,
          String(current),
        );
      }
      return { body: response.body, start };
    }
    if (response.status === 200 && response.body) return { body: response.body, start: 0 };
    throw await httpError(response, String(current));
  }
  throw new HubHttpError(`${url}: more than ${MAX_REDIRECTS} redirects`, 310, null, url);
}

/** The error for a response that is not a success: status, the Hub's X-Error-Code and its message when JSON. */
export async function httpError(response: Response, url: string): Promise<HubHttpError> {
  let detail = '';
  try {
    const text = (await response.text()).slice(0, 2000);
    const json = JSON.parse(text) as { error?: unknown; message?: unknown };
    detail = String(json.error ?? json.message ?? '');
  } catch {
    // Not JSON (a CDN's HTML page): the status says enough.
  }
  const code = response.headers.get('x-error-code');
  return new HubHttpError(
    `${response.status} ${response.statusText || ''}${detail ? `: ${detail}` : ''}`.replace(/ +:/, ':').trim(),
    response.status,
    code,
    url,
  );
}
