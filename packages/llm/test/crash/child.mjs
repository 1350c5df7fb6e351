// The saving child of crash-safety.test.ts: savePretrained of version after version into argv[2] until killed.
// Version v has every weight equal to v and 2 layers when v is odd, 3 when even, so weights from one version with
// the config of another do not load, and a mix of two versions' shards is visible in any one load.
import * as tf from '@tensorflow/tfjs';
import { runCrashChild } from '@chimera/core/testing';
import { ByteTokenizer, CausalLM, savePretrained, tinyLlama } from '@chimera/llm';

await tf.setBackend('cpu');
const tokenizer = new ByteTokenizer();
const models = new Map();

await runCrashChild(async (target, version) => {
  const layers = version % 2 ? 2 : 3;
  if (!models.has(layers)) models.set(layers, new CausalLM(tinyLlama({ vocabSize: 300, hiddenSize: 16, numLayers: layers, numHeads: 2, numKvHeads: 1, intermediateSize: 32 })));
  const model = models.get(layers);
  for (const [, v] of model.namedParameters()) tf.tidy(() => v.assign(tf.fill(v.shape, version)));
  await savePretrained(model, target, { tokenizer, maxShardBytes: 20_000 });
});
