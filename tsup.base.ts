// Shared tsup settings: every published package builds ESM + CJS + d.ts for Node 20, and examples build one
// ESM script. tfjs and @chimera/* stay external so an application has one tfjs engine and one @chimera/core
// (module identity, global RNG, backend).
import type { Options } from 'tsup';

const SHARED_EXTERNAL = [/^@tensorflow\//, /^@chimera\//];

/** A published package: `entry` names the bundles, `external` adds the package's own runtime dependencies. */
export function packageBuild(entry: Record<string, string>, external: RegExp[] = [], extra: Options = {}): Options {
  return {
    entry,
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    external: [...SHARED_EXTERNAL, ...external],
    ...extra,
  };
}

/**
 * An example's script (private package, no library entry). Workspace examples ship as TypeScript source, so
 * they are bundled in (tsup leaves dependencies external by default).
 */
export function exampleBuild(entry: Record<string, string>, external: RegExp[] = []): Options {
  return {
    entry,
    format: ['esm'],
    sourcemap: true,
    clean: true,
    target: 'node20',
    external: [...SHARED_EXTERNAL, ...external],
    noExternal: [/^@chimera-examples\//],
  };
}
