import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base';

// The bin (bin/chimera.js) is a two-line wrapper over this entry's `main`.
export default defineConfig(packageBuild({ index: 'src/index.ts' }));
