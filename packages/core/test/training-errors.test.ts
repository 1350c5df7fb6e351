// Training errors that say what happened (an async batchAt or loss, a loss not connected to the model, a loss
// that is not a scalar), and failed steps that free every tensor they made: a loss, batchAt or backward pass
// that throws at step k leaves tf.memory().numTensors where it was before fit().
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Module } from '../src/nn/module';
import { Linear } from '../src/nn/linear';
import { initBackend } from '../src/runtime/backend';
import { setupTestBackend } from '../src/testing/backend';
import { accumulateGradients } from '../src/training/accumulate';
import { Trainer, type TrainerOptions } from '../src/training/trainer';

class TwoLayers extends Module {
  readonly fc1 = this.addModule('fc1', new Linear(3, 8));
  readonly fc2 = this.addModule('fc2', new Linear(8, 2));

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.fc2.forward(tf.tanh(this.fc1.forward(x))));
  }
}

interface Batch {
  x: tf.Tensor2D;
  y: tf.Tensor2D;
}

function batchAt(step: number): Batch {
  const x = Array.from({ length: 12 }, (_, i) => Math.sin(step + i));
  return { x: tf.tensor2d(x, [4, 3]), y: tf.tensor2d(x.slice(0, 8), [4, 2]) };
}

const mse = (model: TwoLayers, batch: Batch) => tf.mean(tf.square(tf.sub(model.forward(batch.x), batch.y))) as tf.Scalar;

function trainer(overrides: Partial<TrainerOptions<TwoLayers, Batch>> = {}): Trainer<TwoLayers, Batch> {
  return new Trainer<TwoLayers, Batch>({ model: new TwoLayers(), loss: mse, batchAt, steps: 4, progress: false, ...overrides });
}

/** Runs fit (expected to fail) and returns its message and how many tensors it left behind. */
async function failedFit(t: Trainer<TwoLayers, Batch>): Promise<{ message: string; leaked: number }> {
  const before = tf.memory().numTensors;
  const message = await t.fit().then(
    () => 'no error',
    (e: Error) => e.message,
  );
  return { message, leaked: tf.memory().numTensors - before };
}

function dispose(t: Trainer<TwoLayers, Batch>): void {
  t.dispose();
  t.model.dispose();
}

describe('Trainer errors (cpu)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('an async batchAt is refused at construction; a batchAt returning a Promise is refused at its step', async () => {
    expect(() => trainer({ batchAt: (async (step: number) => batchAt(step)) as never })).toThrow(
      /Trainer: batchAt is an async function, but it must return the batch synchronously.*Load or decode the data up front \(await it before fit\(\)/,
    );
    // A plain function that returns a promise (it could also reject later: that must not become an unhandled rejection).
    const t = trainer({ batchAt: ((step: number) => (step === 2 ? Promise.reject(new Error('late')) : batchAt(step))) as never });
    const { message, leaked } = await failedFit(t);
    expect(message).toMatch(/^Trainer: step 2: batchAt\(2, 0\) returned a Promise; it must return the batch synchronously/);
    expect(message).not.toMatch(/shiftedTargets|undefined/);
    expect(leaked).toBe(0);
    expect(t.step).toBe(2);
    dispose(t);
  });

  it('an async loss is refused at construction; a loss returning a Promise names the step', async () => {
    expect(() => trainer({ loss: (async (m: TwoLayers, b: Batch) => mse(m, b)) as never })).toThrow(
      /Trainer: loss is an async function, but it must return a tf\.Scalar synchronously, because gradients are recorded only while it runs/,
    );
    const t = trainer({ loss: ((m: TwoLayers, b: Batch, { step }: { step: number }) => (step === 1 ? Promise.resolve(mse(m, b)) : mse(m, b))) as never });
    const { message, leaked } = await failedFit(t);
    expect(message).toMatch(/^Trainer: step 1: the loss function returned a Promise \(is it async\?\); it must return a tf\.Scalar synchronously/);
    expect(leaked).toBe(0);
    dispose(t);
    expect(() => trainer({ batchAt: 'data' as never })).toThrow(/Trainer: batchAt must be a function \(step, microStep\) => batch, got string/);
  });

  it('a loss that no trainable parameter reaches says so, with the trainable count and the usual causes', async () => {
    // The loss reads the model's output back into JS and builds a new tensor: no gradient can flow.
    const detached = (m: TwoLayers, b: Batch) => tf.mean(tf.tensor(m.forward(b.x).dataSync())) as tf.Scalar;
    const t = trainer({ loss: detached });
    const { message, leaked } = await failedFit(t);
    expect(message).toMatch(/^Trainer: step 0: the loss does not depend on any trainable parameter: none of the 4 trainable variables receives a gradient/);
    expect(message).toMatch(/frozen.*new or detached tensor.*output is not used/);
    expect(message).not.toMatch(/minimize/);
    expect(leaked).toBe(0);
    dispose(t);
    // With accumulation the micro-batch is named too.
    const accumulating = trainer({ loss: (m, b, { microStep }) => (microStep === 1 ? detached(m, b) : mse(m, b)), accumulationSteps: 2 });
    const second = await failedFit(accumulating);
    expect(second.message).toMatch(/^Trainer: step 0, micro-batch 1: the loss does not depend on any trainable parameter/);
    expect(second.leaked).toBe(0);
    dispose(accumulating);
    // Everything frozen: nothing to differentiate, said before any step runs the loss.
    const frozen = new TwoLayers();
    const optimizer = trainer().optimizer;
    frozen.freeze();
    const variables = frozen.namedParameters().map(([, v]) => v);
    expect(() => accumulateGradients(() => mse(frozen, batchAt(0)), variables)).toThrow(
      /accumulateGradients: no trainable variables to differentiate \(4 given, none trainable\); is every parameter frozen\?/,
    );
    optimizer.dispose();
    frozen.dispose();
  });

  it('a loss that is not a scalar says so', () => {
    const model = new TwoLayers();
    const before = tf.memory().numTensors;
    expect(() => accumulateGradients(() => model.forward(batchAt(0).x) as tf.Scalar, model.trainableVariables())).toThrow(
      /accumulateGradients: the loss function must return a scalar tf\.Tensor, got a tensor of shape \[4,2\]; reduce it \(tf\.mean\)/,
    );
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});

describe('a failed fit frees every tensor it made (cpu)', () => {
  beforeAll(() => setupTestBackend('cpu'));

  it('the loss throws at step 2 after the forward pass ran', async () => {
    const t = trainer({
      loss: (m, b, { step }) => {
        const loss = mse(m, b);
        if (step === 2) throw new Error('loss failed at step 2');
        return loss;
      },
    });
    const { message, leaked } = await failedFit(t);
    expect(message).toBe('loss failed at step 2');
    expect(leaked).toBe(0);
    expect(t.step).toBe(2);
    dispose(t);
  });

  it('batchAt throws at step 2, micro-batch 1 (after micro-batch 0 was differentiated)', async () => {
    const t = trainer({
      accumulationSteps: 2,
      batchAt: (step, micro) => {
        if (step === 2 && micro === 1) throw new Error('no data for step 2');
        return batchAt(step + micro);
      },
    });
    const { message, leaked } = await failedFit(t);
    expect(message).toBe('no data for step 2');
    expect(leaked).toBe(0);
    dispose(t);
  });

  it('the backward pass throws at step 1', async () => {
    // A gradient function that fails, as tfjs's SplitV gradient did for a one-piece split.
    const failingGrad = tf.customGrad(((x: tf.Tensor) => ({
      value: tf.clone(x),
      gradFunc: () => {
        throw new Error('gradient failed');
      },
    })) as unknown as Parameters<typeof tf.customGrad>[0]);
    const t = trainer({ loss: (m, b, { step }) => (step === 1 ? (tf.mean(failingGrad(m.forward(b.x))) as tf.Scalar) : mse(m, b)) });
    const { message, leaked } = await failedFit(t);
    expect(message).toBe('gradient failed');
    expect(leaked).toBe(0);
    dispose(t);
  });
});

describe('a batched encode split back into items (one tf.split) trains with one item per batch (cpu)', () => {
  // The obvious batched encoder: every item's rows through one layer, then one tf.split into per-item features.
  const splitLoss = (m: TwoLayers, b: Batch) => {
    const [only] = tf.split(m.forward(b.x), [4], 0);
    return tf.mean(tf.square(tf.sub(only!, b.y))) as tf.Scalar;
  };

  it("with Chimera's split gradient it trains; with tfjs's own gradient the failed fit still frees everything", async () => {
    await setupTestBackend('cpu');
    const t = trainer({ loss: splitLoss });
    const before = tf.memory().numTensors;
    const result = await t.fit();
    expect(result.history.map((h) => h.loss).every((l) => l !== null && Number.isFinite(l))).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    dispose(t);

    await initBackend({ backend: 'cpu', fastPaths: false });
    try {
      const broken = trainer({ loss: splitLoss });
      const { message, leaked } = await failedFit(broken);
      expect(message).toMatch(/Pass at least one tensor to concat/);
      expect(leaked).toBe(0);
      dispose(broken);
    } finally {
      await setupTestBackend('cpu');
    }
  });
});
