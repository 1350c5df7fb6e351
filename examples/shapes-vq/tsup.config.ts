import { defineConfig } from 'tsup';
import { exampleBuild } from '../../tsup.base';

// The training script only; the shapes dataset (TypeScript source) is bundled in.
export default defineConfig(exampleBuild({ train: 'src/train.ts' }, [/^pngjs/]));
