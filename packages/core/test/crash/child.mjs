// The saving child of crash-safety.test.ts: saves version after version into argv[2] until killed.
// CHIMERA_CRASH_MODE picks the save path: file | sharded | trainer-folder | fit, or naive-sharded (not crash-safe). Every tensor of version v holds
// the value v, so a mix of two versions is visible in any one load.
import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { AdamW, saveCheckpoint, saveSafetensors, saveTrainingCheckpoint, Trainer, writeFileAtomic } from '@chimera/core';
import { acknowledgeSave, armCrashPoints, runCrashChild } from '@chimera/core/testing';
import { crashModel, setAll } from './model.mjs';

await tf.setBackend('cpu');
const mode = process.env.CHIMERA_CRASH_MODE;
const model = crashModel();

if (mode === 'file' || mode === 'sharded') {
  await runCrashChild(async (target, version) => {
    setAll(model, version);
    // Sharded: 2 or 3 shards by version, so a save also removes the other layout's stale shards.
    const maxShardBytes = version % 2 ? 6_000 : 12_000;
    await saveCheckpoint(model, target, { maxShardBytes, metadata: { version: String(version) } });
  });
} else if (mode === 'naive-sharded') {
  // The save this harness must catch: each shard replaced atomically, the index last, same shard names every
  // time (what saveShardedSafetensors did before it committed folders as one unit).
  await runCrashChild(async (target, version) => {
    setAll(model, version);
    await fs.mkdir(target, { recursive: true });
    const names = Object.keys(model.stateDict());
    const weightMap = {};
    for (let i = 0; i < names.length; i++) {
      const file = `model-0000${i + 1}-of-0000${names.length}.safetensors`;
      weightMap[names[i]] = file;
      await saveSafetensors(join(target, file), { [names[i]]: model.stateDict()[names[i]] }, { version: String(version) });
    }
    await writeFileAtomic(join(target, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  });
} else if (mode === 'trainer-folder') {
  const optimizer = new AdamW(model);
  await runCrashChild(async (target, version) => {
    setAll(model, version);
    const state = optimizer.getState();
    optimizer.setState({ step: version, paramSteps: Object.fromEntries(Object.keys(state.paramSteps).map((k) => [k, version])), tensors: fillLike(state.tensors, version) });
    const trainerState = { step: version, rngState: version, skippedSteps: 0, consecutiveSkips: 0, learningRate: 1e-3 };
    await saveTrainingCheckpoint(target, { model, optimizer, state: trainerState });
  });
} else if (mode === 'fit') {
  // A real run: fit() with a checkpoint every step and pruning to the newest 2, resumed by each new child.
  const x = tf.randomUniform([8, 16], -1, 1, 'float32', 1);
  const y = tf.randomUniform([8, 8], -1, 1, 'float32', 2);
  const trainer = new Trainer({
    model,
    loss: (m, batch) => tf.losses.meanSquaredError(batch.y, m.forward(batch.x)),
    batchAt: () => ({ x: tf.clone(x), y: tf.clone(y) }),
    steps: 1_000_000,
    optimizer: { learningRate: 1e-3 },
    seed: 1,
    progress: false,
    checkpoint: { dir: process.argv[2], every: 1, keepLast: 2 },
    onStep: ({ step }) => {
      // onStep(s) runs after checkpoint step-s was written (the save of the step before).
      if (step >= 1) acknowledgeSave(step);
      if (step === started + 1) armCrashPoints();
    },
  });
  const started = await trainer.resume(process.argv[2]).catch(() => 0);
  await trainer.fit();
} else {
  throw new Error(`CHIMERA_CRASH_MODE must be file, sharded, trainer-folder or fit; got ${mode}`);
}

function fillLike(tensors, value) {
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, tf.fill(t.shape, value)]));
}
