import { defineConfig } from 'tsup';

// Builds the sample-writing script only: the library is consumed as TypeScript source (see package.json exports).
export default defineConfig({
  entry: { samples: 'src/samples.ts' },
  format: ['esm'],
  sourcemap: true,
  clean: true,
  target: 'node20',
  external: [/^@tensorflow\//, /^@chimera\//, /^pngjs/],
});
