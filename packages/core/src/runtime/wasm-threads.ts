/**
 * Multi-threaded wasm in Node. tfjs-backend-wasm ships a threaded SIMD build (XNNPACK's matmuls, convolutions and
 * elementwise ops on a pthreadpool) but never uses it in Node (tfjs issue 3830), for four reasons this module
 * works around, only while the backend starts:
 * - the thread-support flag is hard-wired to false under Node: set it;
 * - emscripten hands its workers blob: URLs, which Node's Worker rejects: Blob text is captured and written to
 *   temporary files whose paths replace the URLs (the worker script, and the module script in the 'load' message,
 *   prefixed with the module aliases of the node bundle where it refers to them);
 * - the pool is capped at emscripten_num_logical_cores() / 2 (hyperthreads assumed), so 1 thread on 2 cores:
 *   os.cpus() reports twice the requested count while the module initialises;
 * - the pool's workers keep the process alive: they are unref'd.
 * Every patch is undone once the backend has started. Results are bit-for-bit those of the single-threaded build.
 *
 * Two more changes make the pool safe to keep on a machine shared with other work (measured in bench/threads.ts):
 * - **The idle spin.** pthreadpool (github.com/google/pthreadpool, src/pthreads.c `wait_for_new_command`) lets a
 *   worker that finished its share busy-wait PTHREADPOOL_SPIN_WAIT_ITERATIONS = 1,000,000 checks (about 1.5 ms
 *   here; wasm has no pause instruction, so pthreadpool_yield() is empty) before it sleeps on a futex. A training
 *   step issues a parallel operation every millisecond or so, so the worker never sleeps: it burns a core while the
 *   main thread runs everything XNNPACK does not (tfjs's engine, autograd, other kernels), and when another process
 *   wants that core, the three threads share two cores and the main thread gets two thirds of one. The binary is
 *   patched while it is instantiated so that the worker spins WORKER_SPIN_CHECKS checks (tens of microseconds:
 *   enough to catch the next operation of a back-to-back run) before it sleeps.
 * - **The pool's thread count can change between operations.** pthreadpool runs a call on the calling thread alone
 *   when the pool's `threads_count` is 1 (pthreadpool_parallelize_*), and reads it at every call; its workers only
 *   touch it inside a call. tfjs exports no setter, so the field is located from the binary itself: the address of
 *   tfjs's `threadpool` pointer in `get_threads_count`, the field's offset in the `pthreadpool_get_threads_count` it
 *   calls; both are checked against getThreadsCount() once the backend has started. XNNPACK splits the output of an
 *   operation between threads, never a sum, so every thread count gives the same bits.
 */
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';

interface WasmThreadsModule {
  setThreadsCount(threads: number): void;
  getThreadsCount(): number;
}

interface PThreadPool {
  unusedWorkers: { unref(): void; terminate(): unknown }[];
  runningWorkers: { unref(): void }[];
}

const STARTUP_TIMEOUT_MS = 120_000;

/** The parts of the WebAssembly global used here (the project's type libraries do not declare it). */
interface WasmMemory {
  readonly buffer: ArrayBufferLike;
}
interface WasmApi {
  instantiate(source: unknown, imports?: unknown): Promise<unknown>;
}
const WebAssemblyApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/**
 * Checks a pool worker makes before it sleeps once its share of an operation is done (pthreadpool's default:
 * 1,000,000, about 1.5 ms). 20,000 is tens of microseconds: it still catches the next operation when operations
 * run back to back (a batched matmul's slices), and it sleeps through the gaps between them.
 */
export const WORKER_SPIN_CHECKS = 20_000;

/** What the threaded binary says about its pool (see the file comment). */
export interface ThreadedBinaryInfo {
  /** Address in wasm memory of tfjs's `threadpool` pointer. */
  poolPointerAddress: number;
  /** Byte offset of `threads_count` in pthreadpool's struct. */
  threadsCountOffset: number;
  /** Where the worker's spin count is in the binary (an i32.const immediate of 3 bytes) and its loop's step; null if not found. */
  spin: { offset: number; checks: number; step: number } | null;
}

class ByteReader {
  constructor(
    readonly bytes: Uint8Array,
    public pos = 0,
  ) {}
  u8(): number {
    if (this.pos >= this.bytes.length) throw new RangeError('wasm binary ends early');
    return this.bytes[this.pos++]!;
  }
  uleb(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const byte = this.u8();
      result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return result;
    }
    throw new RangeError('LEB128 longer than 5 bytes');
  }
  sleb(): number {
    let result = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = this.u8();
      result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80 && shift < 35);
    return byte & 0x40 ? result - 2 ** shift : result;
  }
  skip(n: number): void {
    this.pos += n;
  }
}

/** Function bodies (byte ranges) by function index, and exported function indices by name. */
function wasmFunctions(bytes: Uint8Array): { bodies: Map<number, [number, number]>; exports: Map<string, number> } {
  const r = new ByteReader(bytes, 8);
  const bodies = new Map<number, [number, number]>();
  const exports = new Map<string, number>();
  let imported = 0;
  const limits = () => {
    const flags = r.uleb();
    r.uleb();
    if (flags & 1) r.uleb();
  };
  while (r.pos < bytes.length) {
    const id = r.u8();
    const size = r.uleb();
    const end = r.pos + size;
    if (id === 2) {
      for (let n = r.uleb(); n > 0; n--) {
        r.skip(r.uleb());
        r.skip(r.uleb());
        const kind = r.u8();
        if (kind === 0) {
          r.uleb();
          imported++;
        } else if (kind === 1) {
          r.u8();
          limits();
        } else if (kind === 2) limits();
        else if (kind === 3) r.skip(2);
        else if (kind === 4) {
          r.u8();
          r.uleb();
        } else throw new RangeError(`unknown import kind ${kind}`);
      }
    } else if (id === 7) {
      for (let n = r.uleb(); n > 0; n--) {
        const length = r.uleb();
        const name = new TextDecoder().decode(bytes.subarray(r.pos, r.pos + length));
        r.skip(length);
        const kind = r.u8();
        const index = r.uleb();
        if (kind === 0) exports.set(name, index);
      }
    } else if (id === 10) {
      const count = r.uleb();
      for (let i = 0; i < count; i++) {
        const length = r.uleb();
        bodies.set(imported + i, [r.pos, r.pos + length]);
        r.skip(length);
      }
    }
    r.pos = end;
  }
  return { bodies, exports };
}

type Instruction = { op: number; args: number[] };

/** The instructions of a small function body, or null at an opcode this decoder does not know. */
function decodeBody(bytes: Uint8Array, [start, end]: [number, number]): Instruction[] | null {
  const r = new ByteReader(bytes, start);
  for (let groups = r.uleb(); groups > 0; groups--) {
    r.uleb();
    r.u8();
  }
  const out: Instruction[] = [];
  while (r.pos < end) {
    const op = r.u8();
    if (op === 0x41) out.push({ op, args: [r.sleb()] }); // i32.const
    else if (op === 0x28) out.push({ op, args: [r.uleb(), r.uleb()] }); // i32.load align offset
    else if (op === 0x20 || op === 0x21 || op === 0x22 || op === 0x10) out.push({ op, args: [r.uleb()] }); // local.get/set/tee, call
    else if (op === 0x04) out.push({ op, args: [r.u8()] }); // if (block type)
    else if (op === 0x05 || op === 0x0b || op === 0x0f || op === 0x1a || op === 0x1b || (op >= 0x45 && op <= 0x4f)) out.push({ op, args: [] });
    else return null;
  }
  return out;
}

/**
 * Finds, in tfjs-backend-wasm's threaded binary, where the pool's thread count lives and where the worker's idle
 * spin count is. Null when the binary does not have the shape this expects (another tfjs version): then the pool
 * cannot be switched at runtime.
 */
export function analyzeThreadedBinary(bytes: Uint8Array): ThreadedBinaryInfo | null {
  try {
    const { bodies, exports } = wasmFunctions(bytes);
    const getter = exports.get('get_threads_count');
    const body = getter === undefined ? undefined : bodies.get(getter);
    const code = body && decodeBody(bytes, body);
    if (!code) return null;
    // get_threads_count(): `i32.const A; i32.load offset=O` reads tfjs's threadpool pointer, then it calls
    // pthreadpool_get_threads_count(pool), whose result is `local.get 0; i32.load offset=F` (threads_count).
    const loadAt = code.findIndex((ins, i) => ins.op === 0x41 && code[i + 1]?.op === 0x28);
    const call = code.find((ins) => ins.op === 0x10);
    if (loadAt < 0 || !call) return null;
    const poolPointerAddress = code[loadAt]!.args[0]! + code[loadAt + 1]!.args[1]!;
    const calleeBody = bodies.get(call.args[0]!);
    const callee = calleeBody && decodeBody(bytes, calleeBody);
    const fields = (callee ?? []).filter((ins, i) => ins.op === 0x28 && callee![i - 1]?.op === 0x20 && callee![i - 1]!.args[0] === 0);
    if (fields.length !== 1 || poolPointerAddress <= 0) return null;
    return { poolPointerAddress, threadsCountOffset: fields[0]!.args[1]!, spin: findWorkerSpin(bytes) };
  } catch {
    return null;
  }
}

/**
 * pthreadpool's wait_for_new_command: `i32.const 1000000; local.set L; local.get F; i32.const 2 (the yield-workers
 * flag); i32.and; i32.eqz; if; loop` whose unrolled body ends `i32.const S; i32.sub; local.tee L; br_if 0`.
 */
function findWorkerSpin(bytes: Uint8Array): ThreadedBinaryInfo['spin'] {
  const head = [0x41, 0xc0, 0x84, 0x3d, 0x21];
  const rest = [0x20, -1, 0x41, 0x02, 0x71, 0x45, 0x04, 0x40, 0x03, 0x40];
  const sites: { offset: number; step: number }[] = [];
  for (let i = bytes.indexOf(0xc0); i >= 0; i = bytes.indexOf(0xc0, i + 1)) {
    const at = i - 1;
    if (at < 0 || !head.every((b, k) => bytes[at + k] === b)) continue;
    const local = bytes[at + 5]!;
    if (local >= 0x80 || !rest.every((b, k) => b < 0 || bytes[at + 6 + k] === b)) continue;
    for (let j = at + 16; j < Math.min(bytes.length - 7, at + 400); j++) {
      const step = bytes[j + 1]!;
      if (bytes[j] === 0x41 && step > 0 && step < 0x40 && bytes[j + 2] === 0x6b && bytes[j + 3] === 0x22 && bytes[j + 4] === local && bytes[j + 5] === 0x0d && bytes[j + 6] === 0x00) {
        sites.push({ offset: at + 1, step });
        break;
      }
    }
  }
  if (sites.length !== 1) return null;
  return { ...sites[0]!, checks: 1_000_000 };
}

/** A copy of the binary whose worker spins `checks` checks (rounded to a multiple of the loop's step) before sleeping. */
function withWorkerSpin(bytes: Uint8Array, spin: NonNullable<ThreadedBinaryInfo['spin']>, checks: number): Uint8Array {
  const value = Math.max(spin.step, Math.round(checks / spin.step) * spin.step); // the loop counts down to exactly 0
  if (value >= 2 ** 21) throw new RangeError(`spin count ${value} does not fit the 3-byte immediate`);
  const out = Uint8Array.from(bytes);
  out.set([0x80 | (value & 0x7f), 0x80 | ((value >> 7) & 0x7f), (value >> 14) & 0x7f], spin.offset); // padded LEB128
  return out;
}

/** Switches the running pool between 1 thread and its size. */
export interface WasmPool {
  /** Threads the pool was created with (the calling thread and its workers). */
  readonly size: number;
  /** Threads the next XNNPACK operation runs on. */
  active(): number;
  /** Sets the threads the following operations run on (1..size). JS runs between operations, never inside one. */
  setActive(threads: number): void;
}

/** The pool of the running threaded backend, after checking that the located field holds getThreadsCount(). */
function locatePool(info: ThreadedBinaryInfo, size: number): WasmPool | null {
  const memory = (tf.backend() as unknown as { wasm?: { wasmMemory?: WasmMemory } }).wasm?.wasmMemory;
  if (!memory) return null;
  let view = new Int32Array(memory.buffer);
  const heap = () => (view.buffer === memory.buffer ? view : (view = new Int32Array(memory.buffer)));
  const pointer = Atomics.load(heap(), info.poolPointerAddress >> 2);
  if (pointer <= 0 || pointer % 4 !== 0 || info.poolPointerAddress % 4 !== 0 || info.threadsCountOffset % 4 !== 0) return null;
  const index = (pointer + info.threadsCountOffset) >> 2;
  if (Atomics.load(heap(), index) !== size) return null;
  let current = size;
  return {
    size,
    active: () => current,
    setActive(threads) {
      if (!Number.isInteger(threads) || threads < 1 || threads > size) throw new RangeError(`pool threads must be 1..${size}, got ${threads}`);
      if (threads === current) return;
      Atomics.store(heap(), index, threads);
      current = threads;
    },
  };
}

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

/** The file of tfjs-backend-wasm that the process loaded: the node bundle, or (Vite-based tools) emscripten's ESM output. */
function loadedBuild(): { kind: 'node' | 'esm'; file: string } | null {
  const loaded = Object.keys(createRequire(join(process.cwd(), 'noop.js')).cache); // the module cache is process-wide
  const bundle = loaded.find((file) => /tfjs-backend-wasm[\\/]dist[\\/]tf-backend-wasm\.node\.js$/.test(file));
  if (bundle) return { kind: 'node', file: bundle };
  const emscripten = loaded.find((file) => /tfjs-backend-wasm[\\/]wasm-out[\\/]tfjs-backend-wasm-threaded-simd\.js$/.test(file));
  return emscripten ? { kind: 'esm', file: emscripten } : null;
}

/**
 * What the pool's workers must define before running the module script they are sent. The node bundle
 * (tf-backend-wasm.node.js, what Node's resolver loads) refers to its rollup aliases `require$$N` and
 * `commonjsGlobal`; the ESM build (what Vite-based tools load) imports emscripten's own output, which needs none.
 * Null when neither build is loaded as expected.
 */
function scriptPrefix(): string | null {
  const build = loadedBuild();
  if (build?.kind === 'node') {
    const source = readFileSync(build.file, 'utf8');
    const aliases = [...source.matchAll(/^var (require\$\$\d+) = require\('([^']+)'\);$/gm)].map(([, name, mod]) => `var ${name} = require('${mod}');`);
    const defined = new Set(aliases.map((line) => line.split(' ')[1]));
    const used = new Set(source.match(/require\$\$\d+/g) ?? []);
    if (aliases.length === 0 || [...used].some((name) => !defined.has(name))) return null;
    return `${aliases.join(' ')} var commonjsGlobal = globalThis;\n`;
  }
  if (build?.kind === 'esm' && !readFileSync(build.file, 'utf8').includes('require$$')) return '';
  return null;
}

/**
 * Whether the threaded build can start here with a switchable pool (what initBackend's default needs), or why not:
 * the patches know the loaded build, and its threaded binary (next to it, where tfjs loads it from unless
 * setWasmPaths moved it) has the pool field and the spin loop this module expects.
 */
export async function threadedBuildSupport(): Promise<{ ok: true } | { ok: false; reason: string }> {
  const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as unknown as Partial<WasmThreadsModule>;
  if (typeof SharedArrayBuffer !== 'function' || typeof Atomics !== 'object') return { ok: false, reason: 'this runtime has no SharedArrayBuffer' };
  const build = loadedBuild();
  if (!build || scriptPrefix() === null || typeof wasm.setThreadsCount !== 'function') {
    return { ok: false, reason: 'tfjs-backend-wasm is not the build these patches know (4.22)' };
  }
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(join(dirname(build.file), 'tfjs-backend-wasm-threaded-simd.wasm'));
  } catch (err) {
    return { ok: false, reason: `its threaded binary could not be read (${(err as Error).message})` };
  }
  const info = analyzeThreadedBinary(bytes);
  if (!info) return { ok: false, reason: "its threaded binary's pool could not be located, so its thread count could not follow the load" };
  if (!info.spin) return { ok: false, reason: "its threaded binary's worker spin loop was not found, so idle workers would keep spinning" };
  return { ok: true };
}

/** Replaces `owner[key]` until the returned function is called. */
function patch<T extends object, K extends keyof T>(owner: T, key: K, value: T[K]): () => void {
  const original = owner[key];
  owner[key] = value;
  return () => {
    owner[key] = original;
  };
}

/** A started threaded backend. */
export interface ThreadedStart {
  /** Threads of the pool (tfjs's getThreadsCount()). */
  threads: number;
  /** Runtime control of the pool's thread count; null when its field could not be located and checked. */
  pool: WasmPool | null;
  /** Whether the workers' idle spin was shortened to WORKER_SPIN_CHECKS. */
  spinPatched: boolean;
}

/**
 * Starts the wasm backend with a pool of `threads` threads. Returns what started, or throws with the reason. Must run
 * before the wasm backend is started for the first time in the process. `workerSpinChecks` is for measurements
 * (bench/threads.ts's ablation): 1,000,000 keeps pthreadpool's own spin.
 */
export async function startWasmWithThreads(threads: number, workerSpinChecks = WORKER_SPIN_CHECKS): Promise<ThreadedStart> {
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
  const realInstantiate = WebAssemblyApi.instantiate;
  let binary: ThreadedBinaryInfo | null = null;
  let spinPatched = false;
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
    // The main thread compiles the binary from bytes; the workers get the compiled module, so they run the patch too.
    patch(WebAssemblyApi, 'instantiate', (source: unknown, imports?: unknown) => {
      if (ArrayBuffer.isView(source) || source instanceof ArrayBuffer) {
        const bytes = ArrayBuffer.isView(source) ? new Uint8Array(source.buffer, source.byteOffset, source.byteLength) : new Uint8Array(source);
        binary = analyzeThreadedBinary(bytes);
        if (binary?.spin && workerSpinChecks !== binary.spin.checks) {
          source = withWorkerSpin(bytes, binary.spin, workerSpinChecks);
          spinPatched = true;
        }
      }
      return realInstantiate.call(WebAssemblyApi, source, imports);
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
  const running = wasm.getThreadsCount();
  const pthreads = (tf.backend() as unknown as { wasm?: { PThread?: PThreadPool } }).wasm?.PThread;
  if (pthreads) {
    // emscripten starts 8 workers whatever the pool's size; the pool took its own (running) when it was created
    // and never creates threads later, so the idle ones only cost memory (about 6 MB each).
    for (const idle of pthreads.unusedWorkers.splice(0)) void idle.terminate();
    for (const worker of pthreads.runningWorkers) worker.unref();
  }
  return { threads: running, pool: binary ? locatePool(binary, running) : null, spinPatched };
}
