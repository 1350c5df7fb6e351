import { initBackend, type BackendName, type BackendReport } from '../runtime/backend';
import { manualSeed } from '../runtime/random';

/** The backends every layer test runs on (tensorflow is not installable on the CI machines). */
export const TEST_BACKENDS: readonly BackendName[] = ['cpu', 'wasm'];

/** Starts exactly `backend` (no fallback) and reseeds, so each test file starts from the same state. */
export async function setupTestBackend(backend: BackendName, seed = 1234): Promise<BackendReport> {
  const report = await initBackend({ backend });
  manualSeed(seed);
  return report;
}
