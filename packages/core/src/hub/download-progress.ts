/**
 * The progress of a model download: one line on stderr, in bytes, redrawn at most every 200 ms. By default
 * ('auto') it follows the training progress bar's rule (an interactive terminal and no CI variable), honours
 * Python's HF_HUB_DISABLE_PROGRESS_BARS, and appears only once a download has run for a second, so a cached or tiny
 * model prints nothing.
 */
import { progressWanted, type ProgressStream } from '../training/progress';

/** What a progress callback receives after each chunk. */
export interface DownloadProgressEvent {
  /** `org/name@commit`. */
  repo: string;
  /** The file being written, relative to the repository. */
  file: string;
  /** Bytes of this file on disk so far (a resumed file starts at its partial size). */
  fileBytes: number;
  /** Size of this file in bytes. */
  fileSize: number;
  /** Bytes on disk so far over every file this call downloads, and their total. */
  doneBytes: number;
  /** Total bytes of every file this call downloads. */
  totalBytes: number;
}

/** 'auto' draws on an interactive stderr outside CI, true always, false never; a function receives every update. */
export type DownloadProgressOption = boolean | 'auto' | ((event: DownloadProgressEvent) => void);

export interface DownloadProgressDisplayOptions {
  progress?: DownloadProgressOption;
  stream?: ProgressStream;
  env?: Record<string, string | undefined>;
  /** Nothing is drawn before the download has run this long (default 1000 ms). */
  delayMs?: number;
}

/** The progress line of one download call (see the file comment); `update` after each chunk, `finish` at the end. */
export class DownloadProgressDisplay {
  private readonly draw: boolean;
  private readonly callback?: (event: DownloadProgressEvent) => void;
  private readonly stream: ProgressStream;
  private readonly delayMs: number;
  private readonly startedAt = Date.now();
  private lastDrawAt = 0;
  private drawn = false;
  private startBytes: number | null = null;

  constructor(options: DownloadProgressDisplayOptions) {
    const choice = options.progress ?? 'auto';
    this.stream = options.stream ?? process.stderr;
    if (typeof choice === 'function') this.callback = choice;
    const env = options.env ?? process.env;
    const disabled = /^(1|true|yes|on)$/i.test(env.HF_HUB_DISABLE_PROGRESS_BARS ?? '');
    this.draw = choice === 'auto' ? !disabled && progressWanted(this.stream, env) : choice === true;
    this.delayMs = options.delayMs ?? 1000;
  }

  /** Hands the event to the callback, if any, and redraws the line when drawing (at most every 200 ms, and at the end). */
  update(event: DownloadProgressEvent): void {
    this.callback?.(event);
    if (!this.draw) return;
    // Bytes already on disk when this call began (a resumed file) do not count towards the rate.
    this.startBytes ??= event.doneBytes;
    const now = Date.now();
    const finished = event.doneBytes >= event.totalBytes;
    if (now - this.startedAt < this.delayMs || (!finished && now - this.lastDrawAt < 200)) return;
    this.lastDrawAt = now;
    this.stream.write(`\r${this.render(event, now)}\x1b[K`);
    this.drawn = true;
  }

  /** Ends the line so later output starts clean. */
  finish(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }

  /** The line's text (no control characters). */
  render(event: DownloadProgressEvent, now = Date.now()): string {
    const fraction = event.totalBytes > 0 ? Math.min(1, event.doneBytes / event.totalBytes) : 1;
    const seconds = (now - this.startedAt) / 1000;
    const rate = seconds > 0 ? (event.doneBytes - (this.startBytes ?? 0)) / seconds : 0;
    const eta = rate > 0 ? (event.totalBytes - event.doneBytes) / rate : NaN;
    return [
      `download ${event.repo}`,
      `${(fraction * 100).toFixed(0).padStart(3)}%`,
      `${formatBytes(event.doneBytes)} / ${formatBytes(event.totalBytes)}`,
      `${formatBytes(rate)}/s`,
      `eta ${Number.isFinite(eta) ? `${Math.round(eta)} s` : '--'}`,
      event.file,
    ].join(' | ');
  }
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${Math.max(0, Math.round(bytes))} B`;
}
