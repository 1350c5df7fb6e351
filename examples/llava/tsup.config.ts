import { defineConfig } from 'tsup';

// Builds the training script only (this package is private and has no library entry). The shapes dataset is
// TypeScript source and is bundled in; tfjs, @chimera/* and pngjs stay external.
export default defineConfig({
  entry: { train: 'src/train.ts' },
  format: ['esm'],
  sourcemap: true,
  clean: true,
  target: 'node20',
  // One tfjs engine and one @chimera/core (global RNG, backend) per process.
  external: [/^@tensorflow\//, /^@chimera\//, /^pngjs/],
  // tsup leaves dependencies external by default; the dataset ships as TypeScript, so it must be bundled.
  noExternal: [/^@chimera-examples\//],
});
