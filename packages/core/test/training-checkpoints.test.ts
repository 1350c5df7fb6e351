// Training checkpoints on damage: resume falls back past a damaged newest checkpoint, a failed resume changes
// nothing, messages name the file, keepLast must keep one, half-pruned folders are cleaned. (Kills during saves:
// crash-safety.test.ts.)
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Module } from '../src/nn/module';
import { Linear } from '../src/nn/linear';
import { setupTestBackend } from '../src/testing/backend';
import { expectNoLeaks } from '../src/testing/leaks';
import { Trainer } from '../src/training/trainer';
import { listCheckpoints, pruneCheckpoints } from '../src/training/checkpoint-state';

class Net extends Module {
  readonly fc: Linear;
  constructor() {
    super();
    this.fc = this.addModule('fc', new Linear(4, 3));
  }
}

interface Batch {
  x: tf.Tensor2D;
  y: tf.Tensor2D;
}

function makeTrainer(model: Net, dir: string, steps = 6) {
  return new Trainer<Net, Batch>({
    model,
    loss: (m, b) => tf.losses.meanSquaredError(b.y, m.fc.forward(b.x)) as tf.Scalar,
    batchAt: (step) => ({ x: tf.fill([2, 4], step / 10) as tf.Tensor2D, y: tf.ones([2, 3]) as tf.Tensor2D }),
    steps,
    optimizer: { learningRate: 0.05 },
    seed: 5,
    progress: false,
    checkpoint: { dir, every: 2, keepLast: 3 },
  });
}

function values(model: Module): number[][] {
  return model.trainableVariables().map((v) => Array.from(v.dataSync()));
}

let dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'chimera-ckpt-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
  dirs = [];
  vi.restoreAllMocks();
});

beforeAll(() => setupTestBackend('cpu'));

/** A run of 6 steps checkpointed at 2, 4 and 6; returns the root and the weights at each checkpoint. */
async function trainedRoot(): Promise<string> {
  const root = tempDir();
  const model = new Net();
  const trainer = makeTrainer(model, root);
  await trainer.fit();
  trainer.dispose();
  model.dispose();
  return root;
}

describe('resuming from damaged checkpoints', () => {
  it('resume(root) skips a damaged newest checkpoint, warns naming it, and continues from the one before', async () => {
    const root = await trainedRoot();
    expect((await listCheckpoints(root)).map((c) => c.step)).toEqual([2, 4, 6]);
    truncateSync(join(root, 'step-00000006', 'optimizer.safetensors'), 100);
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);

    const model = new Net();
    const trainer = makeTrainer(model, root, 8);
    expect(await trainer.resume(root)).toBe(4);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(/skipped 1 damaged checkpoint\(s\), resuming from .*step-00000004:\n.*step-00000006 is damaged: .*optimizer\.safetensors: .*truncated/);

    // Same weights as resuming from step-4 explicitly.
    const reference = new Net();
    const explicit = makeTrainer(reference, root, 8);
    await explicit.resume(join(root, 'step-00000004'));
    expect(values(model)).toEqual(values(reference));
    [trainer, explicit].forEach((t) => t.dispose());
    [model, reference].forEach((m) => m.dispose());
  });

  it('a failed resume changes nothing: weights, optimizer moments and step stay as they were, nothing leaks', async () => {
    const root = await trainedRoot();
    const dir = join(root, 'step-00000004');
    truncateSync(join(dir, 'optimizer.safetensors'), 100);
    const model = new Net();
    const trainer = makeTrainer(model, root, 8);
    const before = values(model);
    const moments = Object.values(trainer.optimizer.getState().tensors).map((t) => Array.from(t.dataSync()));
    await expectNoLeaks(async () => {
      const error = await trainer.resume(dir).then(() => null, (e: Error) => e);
      expect(error!.message).toMatch(/checkpoint .*step-00000004 is damaged: .*optimizer\.safetensors/);
    });
    expect(values(model)).toEqual(before);
    expect(Object.values(trainer.optimizer.getState().tensors).map((t) => Array.from(t.dataSync()))).toEqual(moments);
    expect(trainer.step).toBe(0);
    trainer.dispose();
    model.dispose();
  });

  it('a truncated trainer.json names the file and says it is not valid JSON', async () => {
    const root = await trainedRoot();
    const path = join(root, 'step-00000006', 'trainer.json');
    writeFileSync(path, '{"format": "chimera-trainer-state", "vers');
    const model = new Net();
    const trainer = makeTrainer(model, root, 8);
    const error = await trainer.resume(join(root, 'step-00000006')).then(() => null, (e: Error) => e);
    expect(error!.message).toContain(path);
    expect(error!.message).toMatch(/not valid JSON/);
    trainer.dispose();
    model.dispose();
  });

  it('when every checkpoint is damaged, the error lists each one', async () => {
    const root = await trainedRoot();
    for (const step of ['00000002', '00000004', '00000006']) truncateSync(join(root, `step-${step}`, 'model.safetensors'), 10);
    const model = new Net();
    const trainer = makeTrainer(model, root, 8);
    const error = await trainer.resume(root).then(() => null, (e: Error) => e);
    expect(error!.message).toMatch(/every checkpoint in .* is damaged/);
    expect(error!.message.match(/model\.safetensors/g)).toHaveLength(3);
    trainer.dispose();
    model.dispose();
  });

  it('a checkpoint of another model is an error, not a reason to fall back', async () => {
    const root = await trainedRoot();
    class Wider extends Module {
      readonly fc = this.addModule('fc', new Linear(4, 5));
    }
    const model = new Wider();
    const trainer = new Trainer<Wider, Batch>({
      model,
      loss: () => tf.scalar(0),
      batchAt: () => ({ x: tf.zeros([1, 4]) as tf.Tensor2D, y: tf.zeros([1, 5]) as tf.Tensor2D }),
      steps: 8,
      progress: false,
    });
    await expect(trainer.resume(root)).rejects.toThrow(/does not match the model's trainable parameters; wrong shape: fc\.weight/);
    trainer.dispose();
    model.dispose();
  });

  it('resume of a folder that does not exist says so', async () => {
    const model = new Net();
    const trainer = makeTrainer(model, tempDir());
    await expect(trainer.resume('/nonexistent/run')).rejects.toThrow(/\/nonexistent\/run does not exist/);
    trainer.dispose();
    model.dispose();
  });
});

describe('pruning', () => {
  it('keepLast 0 is refused by the Trainer and by pruneCheckpoints, naming the rule', async () => {
    const model = new Net();
    expect(() => new Trainer({ ...optionsFor(model), checkpoint: { dir: tempDir(), every: 1, keepLast: 0 } })).toThrow(
      /keepLast must be an integer >= 1 \(the newest checkpoint is always kept\), got 0/,
    );
    await expect(pruneCheckpoints(tempDir(), 0)).rejects.toThrow(/keepLast must be an integer >= 1/);
    model.dispose();
  });

  it('a folder whose deletion was interrupted is removed by the next listing and never listed', async () => {
    const root = await trainedRoot();
    // What a prune killed mid-delete leaves: the folder renamed aside, partly emptied.
    const aside = join(root, '.step-00000002.deleting-999999-abcdef');
    mkdirSync(aside);
    writeFileSync(join(aside, 'trainer.json'), '{}');
    // And a step folder that holds no trainer.json (never completed): not a checkpoint.
    mkdirSync(join(root, 'step-00000009'));
    expect((await listCheckpoints(root)).map((c) => c.step)).toEqual([2, 4, 6]);
    expect(readdirSync(root).sort()).toEqual(['step-00000002', 'step-00000004', 'step-00000006', 'step-00000009']);
  });
});

function optionsFor(model: Net) {
  return {
    model,
    loss: (m: Net, b: Batch) => tf.losses.meanSquaredError(b.y, m.fc.forward(b.x)) as tf.Scalar,
    batchAt: () => ({ x: tf.zeros([1, 4]) as tf.Tensor2D, y: tf.zeros([1, 3]) as tf.Tensor2D }),
    steps: 2,
    progress: false as const,
  };
}
