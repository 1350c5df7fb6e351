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

  /** Frees the sums; same as `reset()`. */
  dispose(): void {
    this.reset();
  }

  private collect(map: (g: tf.Tensor) => tf.Tensor): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const [name, sum] of this.sums) out[name] = map(sum);
    return out;
  }
}

/**
 * Result of {@link accumulateGradients}: the loss, each micro-batch's loss, and the summed or averaged gradients
 * (owned by the caller).
 */
export interface AccumulatedGradients {
  /** Mean (or sum, with reduction 'sum') of the micro-batch losses. */
  loss: number;
  /** Loss of each micro-batch, in order. */
  microLosses: number[];
  /** Gradients keyed by tf variable name; the caller owns them. */
  grads: Record<string, tf.Tensor>;
}

/**
 * Runs `lossAt(microStep)` for microStep = 0..microSteps-1, each differentiated with respect to the trainable
 * ones of `variables`, and combines the gradients. With equal-sized micro-batches and a mean loss, 'mean' gives
 * the gradient of the whole batch. Tensors `lossAt` makes are freed per micro-batch, and all of them, those the
 * gradient tape keeps included, when it throws. `label` starts error messages (the Trainer passes its step).
 */
export function accumulateGradients(
  lossAt: (microStep: number) => tf.Scalar,
  variables: tf.Variable[],
  microSteps = 1,
  reduction: 'mean' | 'sum' = 'mean',
  label = 'accumulateGradients',
): AccumulatedGradients {
  if (!(Number.isInteger(microSteps) && microSteps >= 1)) {
    throw new Error(`${label}: microSteps must be an integer >= 1, got ${microSteps}`);
  }
  const trainable = variables.filter((v) => v.trainable);
  if (trainable.length === 0) {
    throw new Error(
      `${label}: no trainable variables to differentiate (${variables.length} given, none trainable); is every parameter frozen?`,
    );
  }
  const microLosses: number[] = [];
  const accumulator = microSteps > 1 ? new GradientAccumulator() : null;
  let single: Record<string, tf.Tensor> = {};
  try {
    for (let micro = 0; micro < microSteps; micro++) {
      const where = microSteps > 1 ? `${label}, micro-batch ${micro}` : label;
      const { value, grads } = tf.tidy(() => gradientsOf(() => lossAt(micro), trainable, where));
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

/**
 * tf.variableGrads with errors that say what went wrong in a training loss, and without its leak: when the loss
 * or the backward pass throws, tfjs keeps the tensors it saved for the backward pass (they are marked kept, so no
 * tidy frees them), about one per op; they are freed here.
 */
function gradientsOf(loss: () => tf.Scalar, variables: tf.Variable[], where: string): { value: tf.Scalar; grads: Record<string, tf.Tensor> } {
  let result: { value: tf.Tensor; grads: (tf.Tensor | null)[] };
  try {
    result = tf.engine().gradients(
      () => {
        const value = loss() as unknown;
        if (isThenable(value)) {
          swallowRejection(value);
          throw new Error(
            `${where}: the loss function returned a Promise (is it async?); it must return a tf.Scalar synchronously, ` +
              'because gradients are recorded only while it runs. Make it synchronous: prepare the data up front (await ' +
              'it before training, keep it as plain arrays) and do not await inside the loss.',
          );
        }
        if (!(value instanceof tf.Tensor) || value.rank !== 0) {
          const got = value instanceof tf.Tensor ? `a tensor of shape [${value.shape}]` : describe(value);
          throw new Error(`${where}: the loss function must return a scalar tf.Tensor, got ${got}; reduce it (tf.mean) to one number`);
        }
        return value;
      },
      variables,
      undefined,
      true,
    );
  } catch (error) {
    releaseGradientTape();
    throw error;
  }
  const grads: Record<string, tf.Tensor> = {};
  variables.forEach((v, i) => {
    if (result.grads[i] != null) grads[v.name] = result.grads[i]!;
  });
  if (Object.keys(grads).length === 0) {
    throw new Error(
      `${where}: the loss does not depend on any trainable parameter: none of the ${variables.length} trainable variables ` +
        'receives a gradient, so there is nothing to update. Usual causes: the parameters the loss uses are frozen ' +
        '(check freeze / trainOnly: only the listed ones are trainable), the loss is computed from a new or detached ' +
        'tensor (values read with data()/dataSync()/arraySync() and turned back into a tensor, or a tensor made outside ' +
        "the loss function), or the model's output is not used in the loss.",
    );
  }
  return { value: result.value as tf.Scalar, grads };
}

/** The tape of a gradient computation that threw still holds its saved tensors; free them (top-level tapes only). */
function releaseGradientTape(): void {
  const state = (tf.engine() as unknown as { state: { gradientDepth: number; activeTape: { saved?: tf.Tensor[] }[] | null } }).state;
  if (state.gradientDepth !== 0 || !state.activeTape) return;
  for (const node of state.activeTape) for (const t of node.saved ?? []) t.dispose();
  state.activeTape = null;
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as PromiseLike<unknown>).then === 'function';
}

/** A promise we refuse may still reject later; that must not surface as an unhandled rejection. */
export function swallowRejection(value: PromiseLike<unknown>): void {
  value.then(undefined, () => undefined);
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  return typeof value === 'object' ? `a ${value.constructor?.name ?? 'object'}` : `${typeof value} ${String(value)}`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
