/**
 * Gradient accumulation: the gradients of k micro-batches are summed (or averaged) before one optimizer
 * step, so a batch too big for memory trains like one batch of k times the size.
 */
import * as tf from '@tensorflow/tfjs';

/** Running sums of gradients keyed by name. Owns its sums; call dispose() (or reset()) when done. */
export class GradientAccumulator {
  private readonly sums = new Map<string, tf.Tensor>();
  private added = 0;

  /** Micro-batches added since the last reset. */
  get count(): number {
    return this.added;
  }

  /** Adds one micro-batch's gradients; the caller keeps ownership of `grads`. */
  add(grads: Record<string, tf.Tensor>): void {
    for (const [name, grad] of Object.entries(grads)) {
      const previous = this.sums.get(name);
      if (previous && !sameShape(previous.shape, grad.shape)) {
        throw new Error(`GradientAccumulator: '${name}' changed shape from [${previous.shape}] to [${grad.shape}] between micro-batches`);
      }
      this.sums.set(name, previous ? tf.tidy(() => tf.add(previous, grad)) : tf.clone(grad));
      previous?.dispose();
    }
    this.added++;
  }

  /** Sum over micro-batches as new tensors the caller owns. */
  sum(): Record<string, tf.Tensor> {
    return this.collect((g) => tf.clone(g));
  }

  /**
   * Mean over micro-batches (sum / count) as new tensors the caller owns. A parameter missing from some
   * micro-batches (its gradient was zero there) is still divided by the full count.
   */
  mean(): Record<string, tf.Tensor> {
    if (this.added === 0) throw new Error('GradientAccumulator.mean: nothing was added; call add(grads) first');
    return this.collect((g) => tf.tidy(() => tf.div(g, this.added)));
  }

  /** Frees the sums and starts over. */
  reset(): void {
    for (const sum of this.sums.values()) sum.dispose();
    this.sums.clear();
    this.added = 0;
  }

  dispose(): void {
    this.reset();
  }

  private collect(map: (g: tf.Tensor) => tf.Tensor): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const [name, sum] of this.sums) out[name] = map(sum);
    return out;
  }
}

export interface AccumulatedGradients {
  /** Mean (or sum, with reduction 'sum') of the micro-batch losses. */
  loss: number;
  microLosses: number[];
  /** Gradients keyed by tf variable name; the caller owns them. */
  grads: Record<string, tf.Tensor>;
}

/**
 * Runs `lossAt(microStep)` for microStep = 0..microSteps-1, each under tf.variableGrads with the explicit
 * `variables`, and combines the gradients. With equal-sized micro-batches and a mean loss, 'mean' gives the
 * gradient of the whole batch. Tensors `lossAt` makes are freed per micro-batch.
 */
export function accumulateGradients(
  lossAt: (microStep: number) => tf.Scalar,
  variables: tf.Variable[],
  microSteps = 1,
  reduction: 'mean' | 'sum' = 'mean',
): AccumulatedGradients {
  if (!(Number.isInteger(microSteps) && microSteps >= 1)) {
    throw new Error(`accumulateGradients: microSteps must be an integer >= 1, got ${microSteps}`);
  }
  if (variables.length === 0) {
    throw new Error('accumulateGradients: no variables to differentiate; is every parameter frozen?');
  }
  const microLosses: number[] = [];
  const accumulator = microSteps > 1 ? new GradientAccumulator() : null;
  let single: Record<string, tf.Tensor> = {};
  try {
    for (let micro = 0; micro < microSteps; micro++) {
      const { value, grads: maybeGrads } = tf.tidy(() => tf.variableGrads(() => lossAt(micro), variables));
      // variableGrads maps non-trainable variables in an explicit list to null.
      const grads = Object.fromEntries(Object.entries(maybeGrads).filter(([, g]) => g != null)) as Record<string, tf.Tensor>;
      microLosses.push(value.dataSync()[0]!);
      value.dispose();
      if (accumulator) {
        accumulator.add(grads);
        Object.values(grads).forEach((g) => g.dispose());
      } else {
        single = grads;
      }
    }
    const total = microLosses.reduce((a, b) => a + b, 0);
    const grads = accumulator ? (reduction === 'mean' ? accumulator.mean() : accumulator.sum()) : single;
    return { loss: reduction === 'mean' ? total / microSteps : total, microLosses, grads };
  } finally {
    accumulator?.dispose();
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
