import { defineConfig } from 'tsup';
import { exampleBuild } from '../../tsup.base';

// The training script only; the shared example sources (TypeScript) are bundled in.
export default defineConfig(exampleBuild({ train: 'src/train.ts' }, [/^pngjs/]));
