// Shared tsup settings: every published package builds one CJS bundle + d.ts for Node 20 with ESM entries over
// it, and examples build one ESM script. tfjs and @chimera/* stay external so an application has one tfjs engine
// and one @chimera/core (module identity, global RNG, backend).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Options } from 'tsup';

const SHARED_EXTERNAL = [/^@tensorflow\//, /^@chimera\//];

/**
 * A published package: `entry` names the bundles, `external` adds the package's own runtime dependencies.
 *
 * One build, two entries: the code is built once, as CJS, and each ESM entry (`<name>.js`, `<name>.d.ts`)
 * re-exports it. Two builds would give an app that both imports and requires a package (or a CJS dependency
 * that requires it) two copies of every class and of the global state (RNG, backend setup, variable names), so
 * `instanceof` fails across them (the dual-package hazard). CJS is the shared build because every Node >= 20
 * can import it; require() of ESM needs Node >= 20.19.
 */
export function packageBuild(entry: Record<string, string>, external: RegExp[] = [], extra: Options = {}): Options {
  const { clean = true, ...options } = extra;
  const outDir = options.outDir ?? 'dist';
  // tsup's `clean` would also delete the ESM entries' .d.ts files when its declaration step starts, which can be
  // after onSuccess wrote them; so the output folder is emptied here, once, when the config loads.
  if (clean) rmSync(outDir, { recursive: true, force: true });
  return {
    entry,
    format: ['cjs'],
    dts: true,
    sourcemap: true,
    clean: false,
    target: 'node20',
    external: [...SHARED_EXTERNAL, ...external],
    ...options,
    onSuccess: async () => writeEsmEntries(Object.keys(entry), outDir),
  };
}

/** `<name>.js` and `<name>.d.ts` re-export `<name>.cjs` (Node finds a tsup CJS bundle's export names statically). */
function writeEsmEntries(names: string[], outDir: string): void {
  for (const name of names) {
    const cjs = `./${name.split('/').pop()}.cjs`;
    mkdirSync(join(outDir, name, '..'), { recursive: true });
    const note = '// The ESM entry re-exports the one CJS build, so import and require share every class and all state.\n';
    writeFileSync(join(outDir, `${name}.js`), `${note}export * from '${cjs}';\n`);
    writeFileSync(join(outDir, `${name}.d.ts`), `export * from '${cjs}';\n`);
  }
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
