/**
 * How many cores the machine leaves to this process: the CPU time of every core this process may run on
 * (os.cpus(), the kernel's /proc/stat on Linux) minus this process's own CPU time (process.cpuUsage(), all its
 * threads, wasm's pool workers included), over a window of wall time. What is left is the CPU time other processes
 * used; a core they do not use is one a second compute thread can have without waiting for it.
 *
 * The caps come from the kernel's own limits: the CPUs the process may run on (os.availableParallelism()) and a
 * cgroup CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), which containers use.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** CPU counters at one moment. */
export interface CpuSnapshot {
  /** performance.now() when taken (ms). */
  wallMs: number;
  /** CPU time of all cores, summed, not idle (user, nice, system, irq; ms). */
  busyMs: number;
  /** This process's CPU time, all threads (ms). */
  ownMs: number;
}

/** Cores' usage between two snapshots. */
export interface CpuWindow {
  /** Wall time between the snapshots (ms). */
  wallMs: number;
  /** Cores other processes kept busy on average (0 = none; 1 = one core all the time). */
  othersCores: number;
  /** Cores this process kept busy on average. */
  ownCores: number;
}

/**
 * Other processes' usage below this many cores still leaves a core free: a second thread then loses at most this
 * share of its core to them, which costs less than the thread gains (bench/threads.ts).
 */
export const FREE_CORE_SLACK = 0.35;

let allowed: Set<number> | null | undefined;

/**
 * The CPUs this process may run on when that is fewer than the machine's (taskset, a cpuset cgroup): their
 * numbers from /proc/self/status, whose order os.cpus() follows. Null when all, or where there is no /proc.
 */
function allowedCpus(): Set<number> | null {
  if (allowed !== undefined) return allowed;
  allowed = null;
  const status = readOrNull('/proc/self/status');
  const list = status?.match(/^Cpus_allowed_list:\s*(\S+)/m)?.[1];
  if (list) {
    const cpus = new Set<number>();
    for (const part of list.split(',')) {
      const [lo, hi] = part.split('-').map(Number);
      for (let cpu = lo!; cpu <= (hi ?? lo!); cpu++) cpus.add(cpu);
    }
    if (cpus.size < os.cpus().length) allowed = cpus;
  }
  return allowed;
}

export function cpuSnapshot(): CpuSnapshot {
  let busyMs = 0;
  const only = allowedCpus();
  os.cpus().forEach((cpu, i) => {
    if (!only || only.has(i)) busyMs += cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq;
  });
  const own = process.cpuUsage();
  return { wallMs: performance.now(), busyMs, ownMs: (own.user + own.system) / 1000 };
}

/** Usage between `from` and `to` (null when less than 1 ms apart). Counters tick in 10 ms steps: use windows of 100 ms or more. */
export function cpuWindow(from: CpuSnapshot, to: CpuSnapshot): CpuWindow | null {
  const wallMs = to.wallMs - from.wallMs;
  if (!(wallMs >= 1)) return null;
  const ownMs = Math.max(0, to.ownMs - from.ownMs);
  const othersMs = Math.max(0, to.busyMs - from.busyMs - ownMs);
  return { wallMs, othersCores: othersMs / wallMs, ownCores: ownMs / wallMs };
}

/**
 * Cores of a cgroup CPU quota (null when there is none or it cannot be read). `read` returns a file's text or null
 * (tests pass their own); by default the files are read from /sys/fs/cgroup.
 */
export function cgroupQuotaCores(read: (path: string) => string | null = readOrNull): number | null {
  const v2 = read('/sys/fs/cgroup/cpu.max'); // "max 100000" or "<quota> <period>"
  if (v2 !== null) {
    const [quota, period] = v2.trim().split(/\s+/);
    const q = Number(quota);
    const p = Number(period);
    return quota !== 'max' && q > 0 && p > 0 ? q / p : null;
  }
  const quota = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us') ?? read('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us'));
  const period = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us') ?? read('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us'));
  return quota > 0 && period > 0 ? quota / period : null; // v1 writes -1 for "no quota"
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Cores this process may use at most: the CPUs it may run on, capped by a cgroup quota (rounded down, at least 1). */
export function usableCores(): number {
  const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const quota = cgroupQuotaCores();
  return Math.max(1, Math.floor(Math.min(cpus, quota ?? Infinity)));
}

/**
 * Compute threads worth running when other processes keep `othersCores` cores busy: the cores they leave free,
 * where a core they use less than FREE_CORE_SLACK of still counts as free; between 1 and `maxThreads`.
 */
export function threadsForLoad(othersCores: number, cores: number, maxThreads: number): number {
  const free = Math.floor(cores - othersCores + FREE_CORE_SLACK);
  return Math.max(1, Math.min(maxThreads, free));
}
