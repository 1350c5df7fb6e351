#!/usr/bin/env node
// The `chimera` command: everything lives in the package's entry, so the bin and `import { main }` behave alike.
import { main } from '../dist/index.js';

process.exitCode = await main(process.argv.slice(2));
