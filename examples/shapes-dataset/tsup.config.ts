import { defineConfig } from 'tsup';
import { exampleBuild } from '../../tsup.base';

// The sample-writing script only: the library is consumed as TypeScript source (see package.json exports).
export default defineConfig(exampleBuild({ samples: 'src/samples.ts' }, [/^pngjs/]));
