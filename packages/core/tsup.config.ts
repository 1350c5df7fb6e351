import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', 'testing/index': 'src/testing/index.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  // One copy of shared state (the global RNG) across the main and testing entries, in CJS too.
  splitting: true,
  target: 'node20',
  // tfjs must stay a single shared instance owned by the application.
  external: [/^@tensorflow\//],
});
