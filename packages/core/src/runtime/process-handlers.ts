/**
 * tfjs's wasm glue (emscripten's Node shell, `tf-backend-wasm.node.js`) registers two process handlers when the
 * wasm module is created: `uncaughtException` rethrows every error that is not emscripten's own ExitStatus, and
 * `unhandledRejection` throws the reason. A throw inside an `uncaughtException` handler makes Node exit with code 7
 * and print the glue's `throw ex;` line first, so any error of the application after `initBackend()` picked wasm
 * looked like a crash inside tfjs. Chimera's wasm code never calls emscripten's `exit()`, so the handlers have
 * nothing to do; removing them gives back Node's own behaviour (the user's stack, exit code 1).
 */

const EVENTS = ['uncaughtException', 'unhandledRejection'] as const;

type Listener = (...args: unknown[]) => void;

// The plain emitter view: Node's typings only accept one event name at a time on process.listeners.
const emitter: NodeJS.EventEmitter = process;

/**
 * Runs `start` and then removes every `uncaughtException` / `unhandledRejection` listener that appeared while it ran
 * (the handlers emscripten's glue adds when the wasm module is created). Listeners present before stay.
 */
export async function withoutAddedProcessHandlers<T>(start: () => Promise<T>): Promise<T> {
  const before = new Map(EVENTS.map((event) => [event, new Set(emitter.listeners(event) as Listener[])]));
  try {
    return await start();
  } finally {
    for (const event of EVENTS) {
      for (const listener of emitter.listeners(event) as Listener[]) {
        if (!before.get(event)!.has(listener)) emitter.removeListener(event, listener);
      }
    }
  }
}
