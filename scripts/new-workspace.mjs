#!/usr/bin/env node
// Starts a new workspace in one step: `node scripts/new-workspace.mjs package <name>` (a published @chimera/<name>)
// or `node scripts/new-workspace.mjs example <name>` (a private @chimera-examples/<name>). docs/guides/new-workspace.md
// says what each written file is for. The repository fields (repository, homepage, bugs, license, engines, the tfjs
// version) are read from packages/core/package.json, so a new package follows whatever the published ones say.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

const USAGE = `usage: node scripts/new-workspace.mjs <package|example> <name> [--description "..."] [--root <repo>]
  package  packages/<name>: @chimera/<name>, published (ESM + CJS + d.ts, typedoc, changeset)
  example  examples/<name>: @chimera-examples/<name>, private (a training script and its reduced test)
  <name>   lowercase letters, digits and '-', e.g. time-series-encoder`;

function fail(message) {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: { description: { type: 'string' }, root: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
} catch (error) {
  fail(error.message);
}
if (parsed.values.help) {
  console.log(USAGE);
  process.exit(0);
}
const [kind, name, ...extra] = parsed.positionals;
if (kind !== 'package' && kind !== 'example') fail(`expected 'package' or 'example' first, got ${kind === undefined ? 'nothing' : `'${kind}'`}`);
if (extra.length > 0) fail(`unexpected arguments: ${extra.join(' ')}`);
if (!name || !/^[a-z][a-z0-9-]*$/.test(name)) fail(`expected a name of lowercase letters, digits and '-', got '${name ?? ''}'`);

const root = parsed.values.root ?? join(dirname(new URL(import.meta.url).pathname), '..');
const folder = kind === 'package' ? `packages/${name}` : `examples/${name}`;
const dir = join(root, folder);
if (existsSync(dir)) fail(`${folder} already exists; pick another name or remove it first`);
const core = JSON.parse(readFileSync(join(root, 'packages/core/package.json'), 'utf8'));
const tfjsVersion = core.devDependencies['@tensorflow/tfjs'];
const description = parsed.values.description ?? `TODO: one sentence a user reads on the registry page.`;

const written = [];
function write(path, content) {
  const full = join(dir, path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, typeof content === 'string' ? content : `${JSON.stringify(content, null, 2)}\n`);
  written.push(`${folder}/${path}`);
}

// Shared by both kinds: type-checking extends the root settings; tests use the shared vitest settings.
const tsconfig = { extends: '../../tsconfig.base.json', compilerOptions: { noEmit: true }, include: ['src', 'test', 'tsup.config.ts', 'vitest.config.ts'] };
const vitestConfig = `import { defineConfig } from 'vitest/config';
import { sharedTestConfig } from '../../vitest.shared';

export default defineConfig({ test: sharedTestConfig });
`;

if (kind === 'package') {
  const packageName = `@chimera/${name}`;
  write('package.json', {
    name: packageName,
    version: '0.0.0',
    description,
    license: core.license,
    keywords: ['machine-learning', 'multimodal', 'llm', 'tensorflow', 'tfjs', 'typescript'],
    homepage: core.homepage?.replace('/packages/core#', `/packages/${name}#`),
    bugs: core.bugs,
    repository: core.repository ? { ...core.repository, directory: folder } : undefined,
    type: 'module',
    main: './dist/index.cjs',
    module: './dist/index.js',
    types: './dist/index.d.cts',
    exports: {
      '.': {
        import: { types: './dist/index.d.ts', default: './dist/index.js' },
        require: { types: './dist/index.d.cts', default: './dist/index.cjs' },
      },
      './package.json': './package.json',
    },
    files: ['dist', 'README.md'],
    sideEffects: false,
    scripts: {
      build: 'tsup',
      test: 'vitest run',
      typecheck: 'tsc --noEmit -p tsconfig.json',
      docs: 'typedoc',
      lint: 'publint --strict && attw --pack . --profile node16',
    },
    peerDependencies: { '@chimera/core': core.peerDependencies?.['@chimera/core'] ?? '^0', '@tensorflow/tfjs': core.peerDependencies['@tensorflow/tfjs'] },
    devDependencies: { '@chimera/core': '*', '@tensorflow/tfjs': tfjsVersion, '@tensorflow/tfjs-backend-wasm': tfjsVersion },
    publishConfig: { access: 'public' },
    engines: core.engines,
  });
  write('tsconfig.json', tsconfig);
  write('tsup.config.ts', `import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.base';

export default defineConfig(packageBuild({ index: 'src/index.ts' }));
`);
  write('vitest.config.ts', vitestConfig);
  if (existsSync(join(root, 'typedoc.base.json'))) {
    write('typedoc.json', { extends: ['../../typedoc.base.json'], entryPoints: ['src/index.ts'], tsconfig: 'tsconfig.json', out: 'api-docs' });
  }
  if (existsSync(join(root, 'LICENSE'))) {
    copyFileSync(join(root, 'LICENSE'), join(dir, 'LICENSE'));
    written.push(`${folder}/LICENSE`);
  }
  write('src/index.ts', `// The public API of ${packageName}: re-exports only. Everything exported here needs a doc comment (typedoc fails otherwise).
export { scaleBy } from './scale';
`);
  write('src/scale.ts', `/** A placeholder to replace: the package's first function. */
import { tf } from '@chimera/core';

/** Multiplies \`x\` by \`factor\`. The result belongs to the caller (dispose it). */
export function scaleBy(x: tf.Tensor, factor: number): tf.Tensor {
  if (!Number.isFinite(factor)) throw new Error(\`scaleBy: expected a finite factor, got \${factor}\`);
  return tf.mul(x, factor);
}
`);
  write(`test/${name}.test.ts`, `import { tf } from '@chimera/core';
import { expectNoLeaksSync, setupTestBackend } from '@chimera/core/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { scaleBy } from '../src/index';

beforeAll(async () => {
  await setupTestBackend('cpu');
});

describe('scaleBy', () => {
  it('multiplies and frees what it does not return', () => {
    expectNoLeaksSync(() => {
      const x = tf.tensor1d([1, -2]);
      const y = scaleBy(x, 3);
      expect(Array.from(y.dataSync())).toEqual([3, -6]);
      tf.dispose([x, y]);
    });
  });

  it('rejects a factor that is not finite', () => {
    expect(() => tf.tidy(() => scaleBy(tf.tensor1d([1]), Number.NaN))).toThrow(/finite factor/);
  });
});
`);
  write('README.md', `# ${packageName}

${description}

## Install

\`\`\`sh
npm install ${packageName} @chimera/core @tensorflow/tfjs @tensorflow/tfjs-backend-wasm
\`\`\`

## Minimal example

\`\`\`ts
import { initBackend, tf } from '@chimera/core';
import { scaleBy } from '${packageName}';

await initBackend();
const doubled = scaleBy(tf.tensor1d([1, 2]), 2);
console.log(doubled.dataSync()); // Float32Array [2, 4]
tf.dispose(doubled);
\`\`\`
`);
  // The first release of a new package is a minor bump (0.0.0 -> 0.1.0).
  const changeset = join(root, '.changeset', `${name}-package.md`);
  if (existsSync(join(root, '.changeset')) && !existsSync(changeset)) {
    writeFileSync(changeset, `---\n'${packageName}': minor\n---\n\nNew package: ${description}\n`);
    written.push(`.changeset/${name}-package.md`);
  }
  // The docs workspace runs every README snippet against the built packages, so it must depend on this one.
  const docsPackage = join(root, 'docs', 'package.json');
  if (existsSync(docsPackage)) {
    const docs = JSON.parse(readFileSync(docsPackage, 'utf8'));
    docs.dependencies = Object.fromEntries(Object.entries({ ...docs.dependencies, [packageName]: '*' }).sort(([a], [b]) => a.localeCompare(b)));
    writeFileSync(docsPackage, `${JSON.stringify(docs, null, 2)}\n`);
    written.push('docs/package.json (dependency added)');
  }
} else {
  const packageName = `@chimera-examples/${name}`;
  write('package.json', {
    name: packageName,
    version: '0.0.0',
    private: true,
    description,
    license: core.license,
    type: 'module',
    scripts: { build: 'tsup', train: 'tsup && node dist/train.js', test: 'vitest run', typecheck: 'tsc --noEmit -p tsconfig.json' },
    dependencies: { '@chimera/core': '*', '@tensorflow/tfjs': tfjsVersion, '@tensorflow/tfjs-backend-wasm': tfjsVersion },
    engines: core.engines,
  });
  write('tsconfig.json', tsconfig);
  write('tsup.config.ts', `import { defineConfig } from 'tsup';
import { exampleBuild } from '../../tsup.base';

// The training script only (examples are run, not imported).
export default defineConfig(exampleBuild({ train: 'src/train.ts' }));
`);
  write('vitest.config.ts', vitestConfig);
  write('src/experiment.ts', `// The experiment as a function, so the script runs it at full size and the test at a reduced one.
import { Linear, Trainer, manualSeed, tf } from '@chimera/core';

export interface ExperimentOptions {
  steps: number;
  seed: number;
}

/** Fits y = 2x - 1 with one Linear layer; returns the first and last losses. */
export async function runExperiment({ steps, seed }: ExperimentOptions): Promise<{ firstLoss: number; lastLoss: number }> {
  manualSeed(seed);
  const layer = new Linear(1, 1);
  const losses: number[] = [];
  const trainer = new Trainer({
    model: layer,
    loss: (m, x: tf.Tensor) => tf.losses.meanSquaredError(tf.sub(tf.mul(x, 2), 1), m.forward(x)) as tf.Scalar,
    batchAt: (step) => tf.tensor2d([[step % 3], [1], [-1]]),
    steps,
    optimizer: { learningRate: 0.05 },
    onStep: (metrics) => losses.push(metrics.loss ?? Number.NaN),
  });
  await trainer.fit();
  trainer.dispose();
  layer.dispose();
  return { firstLoss: losses[0]!, lastLoss: losses[losses.length - 1]! };
}
`);
  write('src/train.ts', `// npm run train -w ${packageName}: the full run.
import { initBackend } from '@chimera/core';
import { runExperiment } from './experiment';

await initBackend();
const { firstLoss, lastLoss } = await runExperiment({ steps: 200, seed: 1 });
console.log(\`loss \${firstLoss.toFixed(4)} -> \${lastLoss.toFixed(4)}\`);
`);
  write(`test/${name}.test.ts`, `import { setupTestBackend } from '@chimera/core/testing';
import { beforeAll, expect, it } from 'vitest';
import { runExperiment } from '../src/experiment';

beforeAll(async () => {
  await setupTestBackend('wasm');
});

it('learns at a reduced size', async () => {
  const { firstLoss, lastLoss } = await runExperiment({ steps: 60, seed: 1 });
  expect(lastLoss).toBeLessThan(firstLoss / 10);
});
`);
  write('README.md', `# ${packageName}

${description}

\`\`\`sh
npm run build && npm run train -w ${packageName}
\`\`\`

Measured results: TODO (what the run prints, on which machine, in how long).
`);
}

console.log(`wrote:\n  ${written.join('\n  ')}\n
next:
  flock /tmp/chimera-npm.lock npm install     # links the new workspace (updates package-lock.json)
  npx turbo run build typecheck test --filter=${kind === 'package' ? `@chimera/${name}` : `@chimera-examples/${name}`}
  ${kind === 'package' ? 'npm run lint -w @chimera/' + name + '   # publint + attw on the packed tarball\n  ' : ''}see docs/guides/new-workspace.md`);
