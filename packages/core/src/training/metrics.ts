/**
 * Training metrics as JSON Lines: one object per step, appended and flushed as it happens, so a crashed run
 * keeps every finished step and the file can be tailed or loaded by any tool.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** One line of the metrics file. Non-finite numbers are written as null (JSON has no NaN). */
export interface StepMetrics {
  /** The 0-based step (the index given to batchAt). */
  step: number;
  /** Mean loss over the step's micro-batches; null when not finite. */
  loss: number | null;
  /** Learning rate used (or that would have been used, on a skipped step). */
  lr: number;
  /** Global gradient norm before clipping; null when not finite. */
  gradNorm: number | null;
  /** True when the step was not applied because the loss or gradient norm was not finite. */
  skipped: boolean;
  /** Skipped steps so far in the run, this one included. */
  skippedTotal: number;
  /** Seconds the step took. */
  time: number;
  /** Wall clock at the end of the step (ms since the epoch). */
  timestamp: number;
}

/** Appends one JSON line per step ({@link StepMetrics}) to a file, flushed as it happens. */
export class MetricsLog {
  /** The JSONL file. */
  readonly path: string;

  /**
   * Opens (creating folders) a JSONL file for appending. `resumeAtStep` drops lines for that step and later,
   * which a crash after the last checkpoint left behind, so a resumed run does not log a step twice.
   */
  constructor(path: string, options: { resumeAtStep?: number } = {}) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
    if (options.resumeAtStep !== undefined && existsSync(path)) {
      const kept = readMetrics(path).filter((m) => m.step < options.resumeAtStep!);
      const temp = `${path}.tmp-${process.pid}`;
      writeFileSync(temp, kept.map((m) => `${JSON.stringify(m)}\n`).join(''));
      renameSync(temp, path);
    }
  }

  /** Appends one step's metrics (non-finite numbers become null). */
  write(metrics: StepMetrics): void {
    // JSON.stringify writes NaN and Infinity as null.
    appendFileSync(this.path, `${JSON.stringify(metrics)}\n`);
  }
}

/** Parses a metrics JSONL file; names the line when one is not valid JSON. */
export function readMetrics(path: string): StepMetrics[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const out: StepMetrics[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line) as StepMetrics);
    } catch (err) {
      // A crash mid-append can leave a torn last line; anything else is corruption worth reporting.
      if (i >= lines.length - 2) return;
      throw new Error(`readMetrics: ${path} line ${i + 1} is not valid JSON (${(err as Error).message})`);
    }
  });
  return out;
}
