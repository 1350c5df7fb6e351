// The --backend flag of the commands that compute, and starting the backend it names (initBackend's automatic
// choice when it is absent: tensorflow if installed, then wasm, then cpu).
import type { FlagValues } from './command';
import { choiceFlag } from './flags';

export const BACKEND_FLAG = { backend: { type: 'string' } } as const;
export const BACKEND_HELP = '  --backend B    tensorflow, wasm or cpu (default: the fastest installed)';

export async function startBackend(values: FlagValues): Promise<void> {
  const backend = choiceFlag(values, 'backend', ['tensorflow', 'wasm', 'cpu'] as const);
  const { initBackend } = await import('@chimera/core');
  await initBackend(backend ? { backend } : {});
}
