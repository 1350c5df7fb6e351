// The saving child of crash-safety.test.ts: a composed LLaVA-style model (tiny ViT + projector + Llama) saves its
// trainable-only checkpoint (the projector) version after version into argv[2] until killed. Version v sets every
// trainable weight to v; the frozen parts stay as built from seed 1.
import * as tf from '@tensorflow/tfjs';
import { runCrashChild } from '@chimera/core/testing';
import { composedModel } from './model.mjs';

await tf.setBackend('cpu');
const model = composedModel();
await runCrashChild(async (target, version) => {
  for (const v of model.trainableVariables()) tf.tidy(() => v.assign(tf.fill(v.shape, version)));
  await model.save(target, { trainableOnly: true, maxShardBytes: 1_500 });
});
