import { defineConfig } from 'tsup';
import { exampleBuild } from '../../tsup.base';

// The training script and the child process that trains the second arm beside it; the workspace examples
// (TypeScript source) are bundled in.
export default defineConfig(exampleBuild({ train: 'src/train.ts', 'arm-worker': 'src/arm-worker.ts' }, [/^pngjs/]));
