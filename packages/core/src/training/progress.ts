/**
 * A one-line progress bar on stderr for training loops. It draws only on an interactive terminal: when
 * stderr is not a TTY or the CI environment variable is set it writes nothing at all (the metrics JSONL is
 * the record there), so logs stay free of carriage-return noise.
 */

/** The slice of a stream the display needs; process.stderr fits. */
export interface ProgressStream {
  /** True on an interactive terminal. */
  isTTY?: boolean;
  /** Terminal width (missing or 0 means unknown). */
  columns?: number;
  /** Writes text as is. */
  write(text: string): unknown;
}

/** Options of {@link ProgressDisplay}. */
export interface ProgressOptions {
  /** Total steps of the run. */
  total: number;
  /** Step the run starts at (after a resume), so rates and ETA count only this session's steps. */
  start?: number;
  /** true/false forces the display on or off; 'auto' (default) follows the TTY / CI rule. */
  enabled?: boolean | 'auto';
  /** Where to draw (default process.stderr). */
  stream?: ProgressStream;
  /** Environment for the CI rule (default process.env). */
  env?: Record<string, string | undefined>;
  /** Minimum milliseconds between redraws (default 100). */
  minIntervalMs?: number;
  /** Name at the start of the line (default 'train'). */
  label?: string;
}

/** Optional values shown after the bar. */
export interface ProgressFields {
  /** Latest loss (null when not finite). */
  loss?: number | null;
  /** Current learning rate. */
  lr?: number;
  /** Skipped steps so far. */
  skipped?: number;
}

/** Whether the automatic rule turns the display on: a TTY and no CI variable (any value but '' or 'false'). */
export function progressWanted(stream: ProgressStream, env: Record<string, string | undefined>): boolean {
  const ci = env.CI;
  const onCi = ci !== undefined && ci !== '' && ci.toLowerCase() !== 'false' && ci !== '0';
  return stream.isTTY === true && !onCi;
}

/** A one-line progress bar redrawn in place, drawn only on an interactive terminal outside CI (or when forced). */
export class ProgressDisplay {
  /** Whether it draws at all. */
  readonly enabled: boolean;
  private readonly stream: ProgressStream;
  private readonly total: number;
  private readonly start: number;
  private readonly minIntervalMs: number;
  private readonly label: string;
  private readonly startedAt = Date.now();
  private lastDrawAt = 0;
  private drawn = false;

  constructor(options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    const choice = options.enabled ?? 'auto';
    this.enabled = choice === 'auto' ? progressWanted(this.stream, options.env ?? process.env) : choice;
    this.total = options.total;
    this.start = options.start ?? 0;
    this.minIntervalMs = options.minIntervalMs ?? 100;
    this.label = options.label ?? 'train';
  }

  /** Reports that `done` steps of `total` are finished. Redraws at most every minIntervalMs, and at the end. */
  update(done: number, fields: ProgressFields = {}): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (done < this.total && now - this.lastDrawAt < this.minIntervalMs) return;
    this.lastDrawAt = now;
    this.stream.write(`\r${this.render(done, fields, now)}\x1b[K`);
    this.drawn = true;
  }

  /** Ends the line so later output starts clean. */
  finish(): void {
    if (this.enabled && this.drawn) this.stream.write('\n');
    this.drawn = false;
  }

  /** The text of the line (no control characters), for tests and custom sinks. */
  render(done: number, fields: ProgressFields = {}, now = Date.now()): string {
    const fraction = this.total > 0 ? Math.min(1, done / this.total) : 1;
    const elapsed = (now - this.startedAt) / 1000;
    const rate = elapsed > 0 ? (done - this.start) / elapsed : 0;
    const eta = rate > 0 ? (this.total - done) / rate : NaN;
    const parts = [`${this.label} ${done}/${this.total}`, `${(fraction * 100).toFixed(0).padStart(3)}%`];
    if (fields.loss !== undefined) parts.push(`loss ${fields.loss === null || !Number.isFinite(fields.loss) ? 'nan' : fields.loss.toFixed(4)}`);
    if (fields.lr !== undefined) parts.push(`lr ${fields.lr.toExponential(2)}`);
    if (fields.skipped) parts.push(`skipped ${fields.skipped}`);
    parts.push(rate >= 1 ? `${rate.toFixed(1)} it/s` : rate > 0 ? `${(1 / rate).toFixed(1)} s/it` : '-- it/s');
    parts.push(`eta ${formatSeconds(eta)}`);
    const text = parts.join(' | ');
    const columns = knownColumns(this.stream.columns);
    // An unknown width (no TTY size, or the 0 that CI and docker terminals report) is not a narrow terminal:
    // draw the whole line with a full bar rather than cutting it.
    if (columns === undefined) return `[${bar(fraction, 30)}] ${text}`;
    const barWidth = Math.max(0, Math.min(30, columns - text.length - 4));
    if (barWidth < 5) return text.slice(0, Math.max(10, columns - 1));
    return `[${bar(fraction, barWidth)}] ${text}`;
  }
}

/** The terminal width, or undefined when the stream does not know it (missing, 0 or not a finite number). */
function knownColumns(columns: number | undefined): number | undefined {
  return columns !== undefined && Number.isFinite(columns) && columns > 0 ? columns : undefined;
}

function bar(fraction: number, width: number): string {
  const filled = Math.round(fraction * width);
  return `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
}

function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(rest).padStart(2, '0')}s` : `${rest}s`;
}
