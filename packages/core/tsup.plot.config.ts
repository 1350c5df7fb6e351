import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base';

// `@chimera/core/plot` builds after the main entries (`npm run build` runs tsup twice), without code splitting:
// tsup's split CJS output rewrites import() into require(), which cannot load Vega (ESM with top-level await).
// It shares no state with the main entry, so its own copy of the few helpers it uses is harmless.
export default defineConfig(
  packageBuild({ index: 'src/plot/index.ts' }, [/^vega/, /^@resvg\//], { outDir: 'dist/plot', clean: false }),
);
