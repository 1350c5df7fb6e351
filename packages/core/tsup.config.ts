import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base';

export default defineConfig(
  packageBuild({ index: 'src/index.ts', 'testing/index': 'src/testing/index.ts', 'hub/index': 'src/hub/index.ts' }, [], {
    // One copy of shared state (the global RNG) across the main and testing entries, in CJS too.
    splitting: true,
  }),
);
