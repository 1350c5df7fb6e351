import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  // One tfjs engine and one @chimera/core (module identity, global RNG) per application.
  external: [/^@tensorflow\//, /^@chimera\//],
});
