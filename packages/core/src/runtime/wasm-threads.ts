/**
 * Multi-threaded wasm in Node. tfjs-backend-wasm ships a threaded SIMD build (XNNPACK's matmuls, convolutions and
 * elementwise ops on a pthread pool) but never uses it in Node (tfjs issue 3830), for four reasons this module
 * works around, only while the backend starts:
 * - the thread-support flag is hard-wired to false under Node: set it;
 * - emscripten hands its workers blob: URLs, which Node's Worker rejects: Blob text is captured and written to
 *   temporary files whose paths replace the URLs (the worker script, and the module script in the 'load' message,
 *   prefixed with the module aliases of the node bundle where it refers to them);
 * - the pool is capped at emscripten_num_logical_cores() / 2 (hyperthreads assumed), so 1 thread on 2 cores:
 *   os.cpus() reports twice the requested count while the module initialises;
 * - the pool's workers keep the process alive: they are unref'd.
 * Every patch is undone once the backend has started. Results are bit-for-bit those of the single-threaded build.
 */
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';

interface WasmThreadsModule {
  setThreadsCount(threads: number): void;
  getThreadsCount(): number;
}

interface PThreadPool {
  unusedWorkers: { unref(): void }[];
  runningWorkers: { unref(): void }[];
}

const STARTUP_TIMEOUT_MS = 120_000;

/** A failed threaded start; `initialising` says the wasm module had begun starting (so no retry is safe). */
export class WasmThreadsError extends Error {
  constructor(
    message: string,
    readonly initialising: boolean,
  ) {
    super(message);
  }
}

/** Threads of the running wasm backend's pool (1 when it is single-threaded or not running). */
export async function wasmThreadCount(): Promise<number> {
  if (!wasmBackendStarted()) return 1;
  const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as unknown as Partial<WasmThreadsModule>;
  const count = typeof wasm.getThreadsCount === 'function' ? wasm.getThreadsCount() : 1;
  return count > 0 ? count : 1;
}

/** Whether the wasm backend has already been started in this process (its thread count is then fixed). */
export function wasmBackendStarted(): boolean {
  return 'wasm' in ((tf.engine() as unknown as { registry: Record<string, unknown> }).registry ?? {});
}

/**
 * What the pool's workers must define before running the module script they are sent. The node bundle
 * (tf-backend-wasm.node.js, what Node's resolver loads) refers to its rollup aliases `require$$N` and
 * `commonjsGlobal`; the ESM build (what Vite-based tools load) imports emscripten's own output, which needs none.
 * Null when neither build is loaded as expected.
 */
function scriptPrefix(): string | null {
  const loaded = Object.keys(createRequire(join(process.cwd(), 'noop.js')).cache); // the module cache is process-wide
  const bundle = loaded.find((file) => /tfjs-backend-wasm[\\/]dist[\\/]tf-backend-wasm\.node\.js$/.test(file));
  if (bundle) {
    const source = readFileSync(bundle, 'utf8');
    const aliases = [...source.matchAll(/^var (require\$\$\d+) = require\('([^']+)'\);$/gm)].map(([, name, mod]) => `var ${name} = require('${mod}');`);
    const defined = new Set(aliases.map((line) => line.split(' ')[1]));
    const used = new Set(source.match(/require\$\$\d+/g) ?? []);
    if (aliases.length === 0 || [...used].some((name) => !defined.has(name))) return null;
    return `${aliases.join(' ')} var commonjsGlobal = globalThis;\n`;
  }
  const emscripten = loaded.find((file) => /tfjs-backend-wasm[\\/]wasm-out[\\/]tfjs-backend-wasm-threaded-simd\.js$/.test(file));
  if (emscripten && !readFileSync(emscripten, 'utf8').includes('require$$')) return '';
  return null;
}

/** Replaces `owner[key]` until the returned function is called. */
function patch<T extends object, K extends keyof T>(owner: T, key: K, value: T[K]): () => void {
  const original = owner[key];
  owner[key] = value;
  return () => {
    owner[key] = original;
  };
}

/**
 * Starts the wasm backend with `threads` threads. Returns the thread count it runs with, or throws with the
 * reason. Must run before the wasm backend is started for the first time in the process.
 */
export async function startWasmWithThreads(threads: number): Promise<number> {
  if (!Number.isInteger(threads) || threads < 2 || threads > 8) {
    throw new WasmThreadsError(`threads must be an integer from 2 to 8 (tfjs's pool has 8 workers), got ${threads}`, false);
  }
  if (wasmBackendStarted()) throw new WasmThreadsError('threads: wasm already started in this process; choose threads in the first initBackend call', false);
  const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as unknown as WasmThreadsModule;
  const prefix = scriptPrefix();
  if (prefix === null || typeof wasm.setThreadsCount !== 'function') {
    throw new WasmThreadsError('threads unavailable: tfjs-backend-wasm is not the node bundle these patches know (4.22); running single-threaded', false);
  }
  const dir = mkdtempSync(join(os.tmpdir(), 'chimera-wasm-threads-'));
  let files = 0;
  const writeScript = (text: string) => {
    const file = join(dir, `script-${files++}.cjs`);
    writeFileSync(file, text);
    return file;
  };
  const NativeBlob = globalThis.Blob;
  class TextBlob extends NativeBlob {
    readonly text_: string;
    constructor(parts: ConstructorParameters<typeof Blob>[0] = [], options?: ConstructorParameters<typeof Blob>[1]) {
      super(parts, options);
      this.text_ = [...parts].map(String).join(''); // emscripten passes strings only
    }
  }
  const textOf = (blob: unknown) => (blob instanceof TextBlob ? blob.text_ : null);
  const realCpus = os.cpus;
  const realPostMessage = Worker.prototype.postMessage;
  const restores = [
    patch(globalThis, 'Blob', TextBlob as typeof Blob),
    patch(URL, 'createObjectURL', ((blob: Blob) => {
      const text = textOf(blob);
      if (text === null) throw new Error('wasm threads: an unexpected Blob reached URL.createObjectURL');
      return writeScript(text);
    }) as typeof URL.createObjectURL),
    patch(URL, 'revokeObjectURL', (() => {}) as typeof URL.revokeObjectURL),
    patch(Worker.prototype, 'postMessage', function (this: Worker, message: unknown, transfer?: readonly unknown[]) {
      const m = message as { cmd?: string; urlOrBlob?: unknown } | null;
      const text = m && m.cmd === 'load' ? textOf(m.urlOrBlob) : null;
      const sent = text === null ? message : { ...m, urlOrBlob: writeScript(prefix + text) };
      return realPostMessage.call(this, sent, transfer as never);
    } as typeof Worker.prototype.postMessage),
    patch(os, 'cpus', () => {
      const cpus = realCpus();
      return Array.from({ length: 2 * threads }, (_, i) => cpus[i % cpus.length]!);
    }),
  ];
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the threaded build did not start within ${STARTUP_TIMEOUT_MS / 1000} s`)), STARTUP_TIMEOUT_MS);
    });
    const started = await Promise.race([tf.setBackend('wasm'), timeout]);
    if (!started) throw new Error('the threaded build failed to initialise');
    await tf.ready();
  } catch (err) {
    throw new WasmThreadsError(`threads: ${(err as Error).message}; call initBackend() without threads`, true);
  } finally {
    clearTimeout(timer);
    for (const restore of restores.reverse()) restore();
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    wasm.setThreadsCount(-1);
    rmSync(dir, { recursive: true, force: true }); // the pool's workers read their scripts while the backend started
  }
  const pool = (tf.backend() as unknown as { wasm?: { PThread?: PThreadPool } }).wasm?.PThread;
  if (pool) for (const worker of [...pool.unusedWorkers, ...pool.runningWorkers]) worker.unref();
  return wasm.getThreadsCount();
}
