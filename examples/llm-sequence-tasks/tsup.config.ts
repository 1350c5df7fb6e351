import { defineConfig } from 'tsup';

// Builds the training script only (this package is private and has no library entry).
export default defineConfig({
  entry: { train: 'src/train.ts' },
  format: ['esm'],
  sourcemap: true,
  clean: true,
  target: 'node20',
  // One tfjs engine and one @chimera/core (global RNG, backend) per process.
  external: [/^@tensorflow\//, /^@chimera\//],
});
