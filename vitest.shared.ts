// Settings every package's vitest config starts from.
import type { ViteUserConfig } from 'vitest/config';

export const sharedTestConfig: ViteUserConfig['test'] = {
  include: ['test/**/*.test.ts'],
  // Limits are for hangs, not speed: 10 minutes is 5x the 2-minute CPU budget of the largest learning test, so a
  // test passes on a machine busy with other work. Speed belongs in bench/.
  testTimeout: 600_000,
  hookTimeout: 600_000,
  // Forks, one per core: wasm tests are single-threaded and CPU-bound.
  pool: 'forks',
  poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  // Built workspace packages load through Node, as in an app: vite-node would otherwise run each dist/index.cjs
  // behind the ESM entries a second time, beside the copy other packages' CJS builds require() (two Modules, two
  // variable-name counters).
  server: { deps: { external: [/\/node_modules\//, /\/packages\/[^/]+\/dist\//] } },
  // scripts/test.mjs sums these files into one closing line for CI.
  reporters: ['default', 'json'],
  outputFile: { json: '.test-results/vitest.json' },
};
