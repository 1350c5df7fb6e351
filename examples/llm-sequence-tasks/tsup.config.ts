import { defineConfig } from 'tsup';
import { exampleBuild } from '../../tsup.base';

// The training script only (this package is private and has no library entry).
export default defineConfig(exampleBuild({ train: 'src/train.ts' }));
