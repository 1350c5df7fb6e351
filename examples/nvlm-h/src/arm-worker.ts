/**
 * The child-process entry that trains one arm (arm.ts) while the parent trains the other: the parent forks
 * dist/arm-worker.js with advanced serialization and sends { backend, input }; the child starts its own TensorFlow.js
 * backend, sends { log } lines while it trains and { result } (or { error }) at the end, then exits.
 */
import { initBackend, type BackendName } from '@chimera/core';
import { trainArm, type ArmInput } from './arm';

interface Request {
  backend?: BackendName;
  input: ArmInput;
}

function send(message: unknown): Promise<void> {
  return new Promise((resolve, reject) => process.send!(message, (error: Error | null) => (error ? reject(error) : resolve())));
}

if (!process.send) {
  console.error('arm-worker: this is the child process of the nvlm-h training script; run `npm run train` instead');
  process.exit(2);
}

process.once('message', (request: Request) => {
  void (async () => {
    try {
      await initBackend(request.backend ? { backend: request.backend } : {});
      const result = await trainArm(request.input, (line) => void send({ log: line }));
      await send({ result });
      process.exit(0);
    } catch (error) {
      await send({ error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
      process.exit(1);
    }
  })();
});
