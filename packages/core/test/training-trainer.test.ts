import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Module } from '../src/nn/module';
import { Linear } from '../src/nn/linear';
import { Dropout } from '../src/nn/dropout';
import { Rng, manualSeed } from '../src/runtime/random';
import { TEST_BACKENDS, setupTestBackend } from '../src/testing/backend';
import { expectNoLeaks } from '../src/testing/leaks';
import { AdamW } from '../src/training/adamw';
import { warmupCosineSchedule } from '../src/training/schedules';
import { Trainer, TrainingDivergedError, type TrainerOptions } from '../src/training/trainer';
import { readMetrics, type StepMetrics } from '../src/training/metrics';
import { ProgressDisplay, progressWanted } from '../src/training/progress';
import { latestCheckpoint, listCheckpoints, saveTrainingCheckpoint } from '../src/training/checkpoint-state';

/** A 2-layer MLP classifier over 2-D points, optionally with dropout between the layers. */
class Classifier extends Module {
  readonly fc1: Linear;
  readonly drop: Dropout | null;
  readonly fc2: Linear;

  constructor(hidden: number, dropout = 0) {
    super();
    this.fc1 = this.addModule('fc1', new Linear(2, hidden));
    this.drop = dropout > 0 ? this.addModule('drop', new Dropout(dropout)) : null;
    this.fc2 = this.addModule('fc2', new Linear(hidden, 2));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = tf.relu(this.fc1.forward(x));
      if (this.drop) h = this.drop.forward(h);
      return this.fc2.forward(h);
    });
  }
}

interface Batch {
  x: tf.Tensor2D;
  labels: tf.Tensor1D;
}

/** Disk (r < 0.5, class 0) versus ring (0.75 < r < 1, class 1): not linearly separable. */
function rings(rng: Rng, n: number): { points: number[]; labels: number[] } {
  const points: number[] = [];
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const label = rng.next() < 0.5 ? 0 : 1;
    const r = label === 0 ? 0.5 * Math.sqrt(rng.next()) : 0.75 + 0.25 * rng.next();
    const theta = 2 * Math.PI * rng.next();
    points.push(r * Math.cos(theta), r * Math.sin(theta));
    labels.push(label);
  }
  return { points, labels };
}

function ringsBatch(step: number, microStep: number, size: number): Batch {
  const { points, labels } = rings(new Rng(1 + step * 16 + microStep), size);
  return { x: tf.tensor2d(points, [size, 2]), labels: tf.tensor1d(labels, 'int32') };
}

function crossEntropy(logits: tf.Tensor, labels: tf.Tensor1D): tf.Scalar {
  return tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, 2), tf.logSoftmax(logits)), -1))) as tf.Scalar;
}

const classifierLoss = (model: Classifier, batch: Batch) => crossEntropy(model.forward(batch.x), batch.labels);

function accuracy(model: Classifier, points: number[], labels: number[]): number {
  const predicted = tf.tidy(() => tf.argMax(model.forward(tf.tensor2d(points, [labels.length, 2])), -1).dataSync());
  return labels.filter((l, i) => predicted[i] === l).length / labels.length;
}

function snapshot(model: Module): number[][] {
  return model.trainableVariables().map((v) => Array.from(v.dataSync()));
}

let scratch: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'chimera-trainer-'));
  scratch.push(dir);
  return dir;
}
afterEach(() => {
  scratch.forEach((d) => rmSync(d, { recursive: true, force: true }));
  scratch = [];
});

describe('Trainer learns (wasm)', () => {
  beforeAll(() => setupTestBackend('wasm'));

  it('fits a 2-layer MLP to a nonlinear task: held-out accuracy >= 95%, metrics logged per step', async () => {
    manualSeed(3);
    const model = new Classifier(32);
    const heldOut = rings(new Rng(424242), 1000);
    const before = accuracy(model, heldOut.points, heldOut.labels);
    const dir = tempDir();
    const metricsPath = join(dir, 'logs', 'metrics.jsonl');
    const steps = 300;
    const trainer = new Trainer({
      model,
      loss: classifierLoss,
      batchAt: (step, micro) => ringsBatch(step, micro, 64),
      steps,
      optimizer: { learningRate: warmupCosineSchedule({ peak: 2e-2, warmupSteps: 20, totalSteps: steps, floor: 2e-3 }), weightDecay: 0.01 },
      clipNorm: 1,
      metricsPath,
      progress: false,
      seed: 11,
    });
    const startedAt = Date.now();
    const result = await trainer.fit();
    const seconds = (Date.now() - startedAt) / 1000;
    const after = accuracy(model, heldOut.points, heldOut.labels);
    expect(before).toBeLessThan(0.8);
    expect(after).toBeGreaterThanOrEqual(0.95);
    expect(result.step).toBe(steps);
    expect(result.skippedSteps).toBe(0);
    expect(trainer.optimizer.step).toBe(steps);
    const firstLosses = result.history.slice(0, 10).map((m) => m.loss!);
    const lastLosses = result.history.slice(-10).map((m) => m.loss!);
    expect(Math.max(...lastLosses)).toBeLessThan(Math.min(...firstLosses) / 3);

    // Every line is valid JSON with the documented fields; lr follows the schedule.
    const lines = readFileSync(metricsPath, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(steps);
    const parsed = lines.map((l) => JSON.parse(l) as StepMetrics);
    for (const [i, m] of parsed.entries()) {
      expect(Object.keys(m).sort()).toEqual(['gradNorm', 'loss', 'lr', 'skipped', 'skippedTotal', 'step', 'time', 'timestamp']);
      expect(m.step).toBe(i);
      expect(m.skipped).toBe(false);
      expect(m.gradNorm).toBeGreaterThan(0);
      expect(m.time).toBeGreaterThanOrEqual(0);
    }
    expect(parsed[0]!.lr).toBeCloseTo(2e-2 / 21, 12);
    expect(parsed[20]!.lr).toBeCloseTo(2e-2, 12);
    expect(readMetrics(metricsPath)).toEqual(parsed);
    console.log(`[training] rings: accuracy ${before.toFixed(3)} -> ${after.toFixed(3)} in ${steps} steps, ${seconds.toFixed(1)} s`);
    trainer.dispose();
    model.dispose();
  });
});

describe.each(TEST_BACKENDS)('Trainer on %s', (backend) => {
  beforeAll(() => setupTestBackend(backend));

  function makeTrainer(model: Classifier, extra: Partial<TrainerOptions<Classifier, Batch>> = {}) {
    return new Trainer<Classifier, Batch>({
      model,
      loss: classifierLoss,
      batchAt: (step, micro) => ringsBatch(step, micro, 16),
      steps: 10,
      optimizer: { learningRate: 1e-2 },
      progress: false,
      ...extra,
    });
  }

  it('leaves the tensor count unchanged by a training step (accumulation and clipping on)', async () => {
    const model = new Classifier(8, 0.1);
    const trainer = makeTrainer(model, { accumulationSteps: 2, clipNorm: 0.1 });
    for (let i = 0; i < 3; i++) await expectNoLeaks(() => void trainer.trainStep(), `trainStep ${i}`);
    trainer.dispose();
    model.dispose();
  });

  it('with accumulation, k micro-batches per step train like one batch of k times the size', async () => {
    const bigBatch = (step: number) => ringsBatch(step, 0, 24);
    const quarter = (step: number, micro: number): Batch =>
      tf.tidy(() => {
        const { x, labels } = bigBatch(step);
        return { x: tf.slice(x, [6 * micro, 0], [6, 2]), labels: tf.slice(labels, [6 * micro], [6]) };
      });
    const requested: [number, number][] = [];
    manualSeed(8);
    const modelA = new Classifier(8);
    const a = makeTrainer(modelA, {
      steps: 3,
      accumulationSteps: 4,
      clipNorm: 0.2,
      batchAt: (step, micro) => (requested.push([step, micro]), quarter(step, micro)),
    });
    manualSeed(8);
    const modelB = new Classifier(8);
    const b = makeTrainer(modelB, { steps: 3, clipNorm: 0.2, batchAt: (step) => bigBatch(step) });
    const [ra, rb] = [await a.fit(), await b.fit()];
    expect(requested).toEqual([0, 1, 2].flatMap((s) => [0, 1, 2, 3].map((m) => [s, m])));
    ra.history.forEach((m, i) => {
      expect(m.loss!).toBeCloseTo(rb.history[i]!.loss!, 5);
      expect(m.gradNorm!).toBeCloseTo(rb.history[i]!.gradNorm!, 5);
    });
    const [wa, wb] = [snapshot(modelA).flat(), snapshot(modelB).flat()];
    wa.forEach((w, i) => expect(w).toBeCloseTo(wb[i]!, 5));
    for (const x of [a, b]) x.dispose();
    modelA.dispose();
    modelB.dispose();
  });

  it('skips non-finite steps without touching the weights, then stops with an explanatory error', async () => {
    const model = new Classifier(8);
    const nanLossAt = new Set([3, 4]);
    const nanGradAt = new Set([6]);
    const weightsAfter: number[][][] = [];
    const dir = tempDir();
    const metricsPath = join(dir, 'metrics.jsonl');
    const trainer = makeTrainer(model, {
      steps: 12,
      metricsPath,
      loss: (m, batch, { step }) => {
        const loss = classifierLoss(m, batch);
        if (nanLossAt.has(step) || step >= 9) return tf.add(loss, NaN) as tf.Scalar;
        // A finite loss (adds 0) whose gradient is NaN: d sqrt(u)/du at 0 is Inf, times 0.
        if (nanGradAt.has(step)) return tf.add(loss, tf.sum(tf.sqrt(tf.mul(m.fc1.weight, 0)))) as tf.Scalar;
        return loss;
      },
      maxConsecutiveSkips: 3,
      onStep: () => weightsAfter.push(snapshot(model)),
    });
    const error = await trainer.fit().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TrainingDivergedError);
    expect((error as TrainingDivergedError).step).toBe(11);
    expect((error as Error).message).toMatch(/step 11: 3 consecutive steps had a non-finite loss/);
    expect((error as Error).message).toMatch(/lower the learning rate/);
    expect((error as Error).message).toMatch(/batchAt\(11\)/);

    // Weights unchanged across each skipped step; changed across the good ones.
    expect(weightsAfter[3]).toEqual(weightsAfter[2]);
    expect(weightsAfter[4]).toEqual(weightsAfter[2]);
    expect(weightsAfter[6]).toEqual(weightsAfter[5]);
    expect(weightsAfter[5]).not.toEqual(weightsAfter[4]);
    expect(weightsAfter[8]).not.toEqual(weightsAfter[7]);
    weightsAfter[8]!.flat().forEach((w) => expect(Number.isFinite(w)).toBe(true));
    expect(weightsAfter[11]).toEqual(weightsAfter[8]);
    expect(trainer.optimizer.step).toBe(12 - 6);

    const metrics = readMetrics(metricsPath);
    expect(metrics.map((m) => m.skipped)).toEqual([false, false, false, true, true, false, true, false, false, true, true, true]);
    expect(metrics[3]!.loss).toBeNull();
    expect(metrics[6]!.loss).not.toBeNull();
    expect(metrics[6]!.gradNorm).toBeNull();
    expect(metrics.at(-1)!.skippedTotal).toBe(6);
    trainer.dispose();
    model.dispose();
  });

  it('resumes exactly: k steps + checkpoint + fresh rebuild + resume gives the uninterrupted loss curve', async () => {
    const steps = 10;
    const schedule = warmupCosineSchedule({ peak: 3e-2, warmupSteps: 3, totalSteps: steps, floor: 1e-3 });
    const build = (root: string, extra: Partial<TrainerOptions<Classifier, Batch>> = {}) => {
      const model = new Classifier(12, 0.3); // dropout masks come from the global RNG
      const trainer = makeTrainer(model, {
        steps,
        optimizer: { learningRate: schedule, weightDecay: 0.1 },
        accumulationSteps: 2,
        clipNorm: 0.5,
        seed: 5,
        metricsPath: join(root, 'metrics.jsonl'),
        checkpoint: { dir: join(root, 'ckpt'), every: 3, keepLast: 2 },
        ...extra,
      });
      return { model, trainer };
    };

    // Uninterrupted.
    const rootA = tempDir();
    manualSeed(100);
    const a = build(rootA);
    const fullRun = await a.trainer.fit();
    const finalA = snapshot(a.model);
    a.trainer.dispose();
    a.model.dispose();

    // Interrupted: checkpoints at 3 and 6, then a crash during step 7 (its metrics line already written).
    const rootB = tempDir();
    manualSeed(100);
    const b = build(rootB, {
      onStep: (m) => {
        if (m.step === 7) throw new Error('simulated crash');
      },
    });
    await expect(b.trainer.fit()).rejects.toThrow(/simulated crash/);
    b.trainer.dispose();
    b.model.dispose();
    expect((await listCheckpoints(join(rootB, "ckpt"))).map((c) => c.step)).toEqual([3, 6]);
    expect(readMetrics(join(rootB, 'metrics.jsonl')).map((m) => m.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);

    // The dropout actually draws from the global RNG: a resume that did not restore it would diverge.
    manualSeed(987654);
    const d = build(rootB, { checkpoint: undefined, metricsPath: undefined });
    await d.trainer.resume(join(rootB, 'ckpt', 'step-00000006'));
    manualSeed(1); // clobber the restored RNG state
    const diverged = await d.trainer.fit();
    expect(diverged.history.map((m) => m.loss)).not.toEqual(fullRun.history.slice(6).map((m) => m.loss));
    d.trainer.dispose();
    d.model.dispose();

    // Fresh process state: another seed, so the init and the RNG differ unless the checkpoint restores them.
    manualSeed(987654);
    const c = build(rootB);
    expect(await c.trainer.resume(join(rootB, 'ckpt'))).toBe(6);
    const resumed = await c.trainer.fit();
    expect(resumed.history.map((m) => m.step)).toEqual([6, 7, 8, 9]);
    expect(resumed.history.map((m) => m.loss)).toEqual(fullRun.history.slice(6).map((m) => m.loss));
    expect(resumed.history.map((m) => m.gradNorm)).toEqual(fullRun.history.slice(6).map((m) => m.gradNorm));
    expect(snapshot(c.model)).toEqual(finalA);
    // The metrics file reads as one uninterrupted run (the crashed step's stale lines were dropped).
    const strip = (ms: StepMetrics[]) => ms.map(({ step, loss, lr, gradNorm, skipped }) => ({ step, loss, lr, gradNorm, skipped }));
    expect(strip(readMetrics(join(rootB, 'metrics.jsonl')))).toEqual(strip(readMetrics(join(rootA, 'metrics.jsonl'))));
    // keepLast 2: the final checkpoint (10) and the one at 9.
    expect((await listCheckpoints(join(rootB, "ckpt"))).map((x) => x.step)).toEqual([9, 10]);
    c.trainer.dispose();
    c.model.dispose();
  });

  it('never leaves a half-written checkpoint folder', async () => {
    const root = tempDir();
    const model = new Classifier(4);
    const optimizer = new AdamW(model);
    const state = { step: 1, rngState: 7, skippedSteps: 0, consecutiveSkips: 0, learningRate: 1e-3 };
    await saveTrainingCheckpoint(join(root, 'step-00000001'), { model, optimizer, state });
    // A save that fails midway (after the model file) leaves nothing behind.
    optimizer.dispose();
    await expect(saveTrainingCheckpoint(join(root, 'step-00000002'), { model, optimizer, state })).rejects.toThrow(/disposed/);
    expect(readdirSync(root).sort()).toEqual(['step-00000001']);
    // Folders without trainer.json (a foreign or incomplete folder) are never taken for a checkpoint.
    mkdirSync(join(root, 'step-00000009'));
    expect(await latestCheckpoint(root)).toBe(join(root, 'step-00000001'));
    expect(existsSync(join(root, 'step-00000001', 'model.safetensors'))).toBe(true);
    model.dispose();
  });

  it('refuses to resume into a model with other trainable parameters', async () => {
    const root = tempDir();
    const small = new Classifier(4);
    const t1 = makeTrainer(small, { steps: 1, checkpoint: { dir: root, every: 1 } });
    await t1.fit();
    t1.dispose();
    small.dispose();
    const other = new Classifier(4);
    other.freeze('fc1.*');
    const t2 = makeTrainer(other, { steps: 2 });
    await expect(t2.resume(root)).rejects.toThrow(/unexpected: fc1\.weight, fc1\.bias/);
    t2.dispose();
    other.dispose();
  });
});

describe('progress display', () => {
  const sink = (isTTY: boolean) => {
    const writes: string[] = [];
    return { writes, stream: { isTTY, columns: 120, write: (s: string) => writes.push(s) } };
  };

  it('is off with CI set or without a TTY, and writes nothing then', () => {
    for (const [isTTY, env] of [
      [true, { CI: '1' }],
      [true, { CI: 'true' }],
      [false, {}],
    ] as const) {
      const { writes, stream } = sink(isTTY);
      const progress = new ProgressDisplay({ total: 5, stream, env, minIntervalMs: 0 });
      expect(progress.enabled).toBe(false);
      for (let i = 1; i <= 5; i++) progress.update(i, { loss: 0.5, lr: 1e-3 });
      progress.finish();
      expect(writes).toEqual([]);
    }
    expect(progressWanted({ isTTY: true, write: () => 0 }, { CI: 'false' })).toBe(true);
  });

  it('draws one carriage-return line on a TTY and ends it with a newline', () => {
    const { writes, stream } = sink(true);
    const progress = new ProgressDisplay({ total: 4, stream, env: {}, minIntervalMs: 0 });
    expect(progress.enabled).toBe(true);
    progress.update(2, { loss: 0.25, lr: 3e-4, skipped: 1 });
    progress.update(4, { loss: null, lr: 3e-4 });
    progress.finish();
    expect(writes).toHaveLength(3);
    expect(writes[0]).toMatch(/^\r\[#+-+\] train 2\/4 \|  50% \| loss 0\.2500 \| lr 3\.00e-4 \| skipped 1 \|/);
    expect(writes[1]).toMatch(/train 4\/4 \| 100% \| loss nan/);
    expect(writes[2]).toBe('\n');
  });

  /** What a 3-step Trainer run with `options` writes to stderr. */
  async function stderrOfRun(options: Partial<TrainerOptions<Classifier, Batch>>): Promise<string[]> {
    await setupTestBackend('cpu');
    const writes: string[] = [];
    const original = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => (writes.push(String(chunk)), true)) as typeof process.stderr.write;
    try {
      const model = new Classifier(4);
      const trainer = new Trainer<Classifier, Batch>({
        model,
        loss: classifierLoss,
        batchAt: (step) => ringsBatch(step, 0, 8),
        steps: 3,
        ...options,
      });
      await trainer.fit();
      trainer.dispose();
      model.dispose();
    } finally {
      process.stderr.write = original;
    }
    return writes;
  }

  it('the Trainer draws nothing when progress is off', async () => {
    const previousCi = process.env.CI;
    process.env.CI = '1';
    let writes: string[];
    try {
      writes = await stderrOfRun({});
    } finally {
      if (previousCi === undefined) delete process.env.CI;
      else process.env.CI = previousCi;
    }
    expect(writes.filter((w) => w.includes('train '))).toEqual([]);
  });

  it('the Trainer names its progress line with progressLabel', async () => {
    const writes = await stderrOfRun({ progress: true, progressLabel: 'stage1' });
    expect(writes.some((w) => /\] stage1 3\/3 \| 100%/.test(w))).toBe(true);
    expect(writes.some((w) => w.includes('] train '))).toBe(false);
  });
});
