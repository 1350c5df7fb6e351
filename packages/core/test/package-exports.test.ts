// The built package must load from plain Node in both module systems (run after `build`; turbo orders it).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const built = existsSync(`${packageDir}/dist/index.cjs`) && existsSync(`${packageDir}/dist/index.js`);

function lastJsonLine(args: string[]): unknown {
  const out = execFileSync(process.execPath, args, { cwd: packageDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

// What a user sees: the public names, whether importing picked a backend (it must not), one shared tfjs.
const report = `
  console.log(JSON.stringify({
    api: ['initBackend', 'Module', 'Linear', 'tf'].filter((k) => k in core),
    testing: ['setupTestBackend', 'expectNoLeaks', 'gradCheck'].filter((k) => k in testing),
    backendChosenOnImport: core.tf.engine().backendInstance != null,
    sharedEngine: core.tf.engine() === require('@tensorflow/tfjs').engine(),
  }));
`;
const expected = {
  api: ['initBackend', 'Module', 'Linear', 'tf'],
  testing: ['setupTestBackend', 'expectNoLeaks', 'gradCheck'],
  backendChosenOnImport: false,
  sharedEngine: true,
};

describe('built package', () => {
  it('exists (turbo builds before testing; run `npm run build` by hand otherwise)', () => {
    expect(built).toBe(true);
  });

  it('loads with require()', () => {
    const script = `const core = require('@chimera/core'); const testing = require('@chimera/core/testing'); ${report}`;
    expect(lastJsonLine(['-e', script])).toEqual(expected);
  });

  it('loads with import()', () => {
    const script = `import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);
      const core = await import('@chimera/core'); const testing = await import('@chimera/core/testing'); ${report}`;
    expect(lastJsonLine(['--input-type=module', '-e', script])).toEqual(expected);
  });

  it('starts the default backend and runs a layer from the CJS build', () => {
    const script = `const core = require('@chimera/core');
      core.initBackend().then((r) => {
        const y = new core.Linear(3, 2).forward(core.tf.ones([4, 3]));
        console.log(JSON.stringify({ backend: r.backend, shape: y.shape }));
      });`;
    expect(lastJsonLine(['-e', script])).toEqual({ backend: 'wasm', shape: [4, 2] });
  });
});
