/**
 * What a run cost: wall and CPU seconds and the machine's load average at start and end, for metrics.json and
 * the closing line (on a shared machine the load explains a slow run). `stage` times one stage by name.
 */
import { loadavg } from 'node:os';

export interface RunTiming {
  wallSeconds: number;
  cpuSeconds: { user: number; system: number };
  loadAverage: { atStart: number[]; atEnd: number[] };
}

export class RunClock {
  private readonly startedAt = performance.now();
  private readonly cpuAtStart = process.cpuUsage();
  private readonly loadAtStart = loadavg();
  /** Wall seconds of each stage timed with `stage`, in the order they ran. */
  readonly stages: Record<string, number> = {};

  /** Runs `work` and adds its wall seconds to `stages[name]`. */
  async stage<T>(name: string, work: () => T | Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await work();
    } finally {
      this.stages[name] = (this.stages[name] ?? 0) + (performance.now() - start) / 1000;
    }
  }

  /** The run so far. */
  timing(): RunTiming {
    const cpu = process.cpuUsage(this.cpuAtStart);
    return {
      wallSeconds: (performance.now() - this.startedAt) / 1000,
      cpuSeconds: { user: cpu.user / 1e6, system: cpu.system / 1e6 },
      loadAverage: { atStart: this.loadAtStart, atEnd: loadavg() },
    };
  }

  /** `123 s wall, 240 s CPU; load average 1.2 at start, 3.4 at end`. */
  summary(): string {
    const t = this.timing();
    return (
      `${t.wallSeconds.toFixed(0)} s wall, ${(t.cpuSeconds.user + t.cpuSeconds.system).toFixed(0)} s CPU; ` +
      `load average ${t.loadAverage.atStart[0]!.toFixed(1)} at start, ${t.loadAverage.atEnd[0]!.toFixed(1)} at end`
    );
  }
}
