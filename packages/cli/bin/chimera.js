#!/usr/bin/env node
// The `chimera` command: everything lives in the package's entry, so the bin and `import { main }` behave alike.
import { main } from '../dist/index.js';

// A reader that stops early (`chimera summary x --tensors | head`) closes the pipe: stop quietly, as Unix tools do.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

process.exitCode = await main(process.argv.slice(2));
