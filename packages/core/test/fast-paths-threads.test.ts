import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { usableCores } from '../src/runtime/core-capacity';
import { forceOthersLoad, threadPolicyStatus } from '../src/runtime/thread-policy';
import { threadsWorkload, type WorkloadResult } from './fast-paths-threads.child';

// Threaded wasm is chosen once per process: the default ('auto', switched between 1 and 2 threads while it runs)
// runs here, one thread and a fixed pool of two in child processes, one after the other (run side by side on a
// loaded 2-core machine, they starved each other).

const here = dirname(fileURLToPath(import.meta.url));
const viteNode = join(here, '..', '..', '..', 'node_modules', '.bin', 'vite-node');

function runChild(threads: number): Promise<WorkloadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(viteNode, [join(here, 'fast-paths-threads.child.ts')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CHIMERA_THREADS_CHILD: String(threads) },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`child with ${threads} thread(s) did not exit within 300 s (a worker kept it alive?)\n${out}\n${err}`));
    }, 300_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !line.startsWith('{')) reject(new Error(`child with ${threads} thread(s) failed (exit ${code}):\n${out}\n${err}`));
      else resolve(JSON.parse(line));
    });
  });
}

/** CPU milliseconds of each thread of this process (Linux /proc), by thread id. */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, (Number(fields[11]) + Number(fields[12])) * 10);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

// On one core the default is the single-threaded build, and there is no pool to check.
describe.runIf(usableCores() >= 2)('wasm threads', () => {
  let auto: WorkloadResult;

  it('the default switches between 1 and 2 threads while it runs and computes bit for bit what 1 thread and a fixed pool of 2 compute, and the processes exit', async () => {
    auto = await threadsWorkload('auto', true);
    expect(auto.threadMode, auto.reasons.join('\n')).toBe('adaptive');
    expect(auto.threads).toBe(2);
    expect(auto.reasons.at(-1)).toMatch(/^wasm: chosen \(XNNPACK; threads: up to 2, adaptive: [12] now \(other processes used [\d.]+ of \d+ cores/);
    expect(auto.reasons.at(-1)).not.toMatch(/could not be shortened/);
    expect(auto.counts).toEqual([2, 1, 2, 1, 2]);
    const one = await runChild(1);
    expect(one.threads).toBe(1);
    expect(one.threadMode).toBe('single');
    expect(one.reasons.at(-1)).toBe('wasm: chosen (single-threaded XNNPACK)');
    const two = await runChild(2);
    expect(two.threads, two.reasons.join('\n')).toBe(2);
    expect(two.threadMode).toBe('fixed');
    expect(two.reasons.at(-1)).toMatch(/^wasm: chosen \(XNNPACK; threads: 2, fixed/);
    expect(auto.hash).toBe(one.hash);
    expect(two.hash).toBe(one.hash);
  }, 900_000);

  // The switch must reach the pool: with 1 thread forced, the pool's worker must not run at all.
  it.runIf(existsSync('/proc/self/task'))('runs large matmuls on the worker at 2 threads and never at 1', () => {
    if (!auto) throw new Error('needs the previous test, which starts the threaded backend; it did not finish');
    expect(tf.getBackend()).toBe('wasm');
    const a = tf.randomNormal([1024, 256]);
    const b = tf.randomNormal([256, 688]); // 360 MFLOP a product, far above the policy's 1 MFLOP
    const work = () => {
      for (let i = 0; i < 20; i++) tf.dispose(tf.matMul(a, b));
    };
    const cpuOf = (threads: number) => {
      forceOthersLoad(threads === 2 ? 0 : 1, true);
      expect(threadPolicyStatus()!.threads).toBe(threads);
      const before = threadCpu();
      work();
      const after = threadCpu();
      return new Map([...after].map(([tid, ms]) => [tid, ms - (before.get(tid) ?? 0)]));
    };
    work();
    const atTwo = cpuOf(2);
    const main = String(process.pid);
    const [worker, workerMs] = [...atTwo].filter(([tid]) => tid !== main).sort((x, y) => y[1] - x[1])[0]!;
    expect(workerMs, 'the busiest other thread at 2 threads: the pool worker').toBeGreaterThanOrEqual(30);
    const atOne = cpuOf(1);
    expect(atOne.get(worker) ?? 0, 'the pool worker at 1 thread').toBeLessThanOrEqual(10);
    forceOthersLoad(null);
    tf.dispose([a, b]);
  }, 600_000);
});
