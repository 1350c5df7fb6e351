// Copied into the outside project and run there: an ES module app that also require()s the packages (or uses a
// CJS dependency that does) must see one copy of each. Prints a JSON report; exits 1 when anything differs.
// argv: the package entry points to check, e.g. @chimera/core @chimera/core/testing @chimera/llm ...
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

async function main(specifiers) {
  const problems = [];
  let compared = 0;
  for (const specifier of specifiers) {
    const required = require(specifier);
    const imported = await import(specifier);
    const names = Object.keys(required).filter((name) => name !== '__esModule' && name !== 'default');
    if (names.length === 0) problems.push(`${specifier}: require() gave no exports`);
    for (const name of names) {
      compared++;
      if (!(name in imported)) problems.push(`${specifier}: '${name}' is missing from the ES module`);
      else if (imported[name] !== required[name]) problems.push(`${specifier}: '${name}' differs between import and require`);
    }
  }
  // What users hit (issue 13): a model built from the require()d @chimera/llm, checked by the imported packages.
  const { Module, tf } = await import('@chimera/core');
  const { CausalLM, tinyLlama } = require('@chimera/llm');
  await tf.setBackend('cpu');
  const model = new CausalLM(tinyLlama({ vocabSize: 32, hiddenSize: 16, numLayers: 1 }));
  if (!(model instanceof Module)) problems.push('a CausalLM from require("@chimera/llm") is not an instance of the imported Module');
  const { compose } = await import('@chimera/fusion');
  try {
    compose({ backbone: model, modalities: {}, fusion: {} }).dispose?.();
  } catch (error) {
    // Only the backbone check is under test here; other complaints about this minimal call are not.
    if (/backbone must be a CausalLM/.test(error.message)) problems.push(`imported compose() refused a require()d CausalLM: ${error.message}`);
  }
  model.dispose();
  return { compared, problems };
}

main(process.argv.slice(2)).then(
  (report) => {
    console.log(JSON.stringify(report));
    process.exit(report.problems.length ? 1 : 0);
  },
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
