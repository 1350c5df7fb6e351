/**
 * AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization") over named tf.Variables. The
 * update matches torch.optim.AdamW (amsgrad off) operation for operation, including bias correction and the
 * per-parameter step count. The moments are ours (not tf.train.adam's hidden slots), so they can be saved
 * and restored by parameter name.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../nn/module';
import type { LearningRateSchedule } from './schedules';

/** Says whether a parameter receives weight decay. */
export type WeightDecayFilter = (name: string, shape: readonly number[]) => boolean;

/** Options of {@link AdamW}; the defaults are torch.optim.AdamW's. */
export interface AdamWOptions {
  /** A fixed rate or a schedule of the step (default 1e-3, PyTorch's default). */
  learningRate?: number | LearningRateSchedule;
  /** Decay of the first moment (default 0.9). */
  beta1?: number; // default 0.9
  /** Decay of the second moment (default 0.999). */
  beta2?: number; // default 0.999
  /** Added to the denominator (default 1e-8). */
  eps?: number; // default 1e-8
  /** Decoupled decay coefficient (default 0.01, PyTorch's default). */
  weightDecay?: number;
  /** Which parameters decay (default: `defaultWeightDecayFilter`). */
  decayFilter?: WeightDecayFilter;
}

/** Names and moments of the optimizer, for checkpoints. `tensors` are the live variables: do not dispose. */
export interface AdamWState {
  /** Updates applied so far (skipped steps do not count). */
  step: number;
  /** Per-parameter update counts (bias correction uses these, as PyTorch does). */
  paramSteps: Record<string, number>;
  /** `<name>.exp_avg` and `<name>.exp_avg_sq` for every parameter. */
  tensors: Record<string, tf.Tensor>;
}

interface ParamSlot {
  name: string;
  variable: tf.Variable;
  expAvg: tf.Variable;
  expAvgSq: tf.Variable;
  decay: boolean;
  step: number;
}

const NORM_SEGMENT = /norm|^ln(_?\w*)?$/;
const EMBEDDING_SEGMENT = /embed|^wte$|^wpe$/;
const LEARNED_TOKEN = /tokens?$/;

/**
 * The usual exclusions: no decay for rank < 2 tensors (biases, norm scales, gates), anything named `bias`,
 * and parameters of normalisation or embedding modules (`ln_f`, `input_layernorm`, `embed_tokens`, `wte`,
 * `position_embedding`) or learned tokens (`cls_token`, `pos_embed`). Only the parameter's own name and its
 * owning module's name are inspected, so `patch_embed.proj.weight` (a projection) still decays.
 */
export function defaultWeightDecayFilter(name: string, shape: readonly number[]): boolean {
  if (shape.length < 2) return false;
  const segments = name.toLowerCase().split('.');
  const param = segments[segments.length - 1] ?? '';
  const owner = segments[segments.length - 2] ?? '';
  if (param === 'bias') return false;
  if (NORM_SEGMENT.test(owner) || NORM_SEGMENT.test(param)) return false;
  if (EMBEDDING_SEGMENT.test(owner) || EMBEDDING_SEGMENT.test(param)) return false;
  if (LEARNED_TOKEN.test(param)) return false;
  return true;
}

/** Parameters given as a Module (its trainable parameters), name/variable pairs, or a name -> variable record. */
export type NamedVariables = Module | Iterable<[string, tf.Variable]> | Record<string, tf.Variable>;

/**
 * AdamW over named tf.Variables, matching torch.optim.AdamW (amsgrad off) including bias correction and per-parameter
 * step counts. Its moments are named per parameter so they can be checkpointed; call `dispose()` to free them.
 */
export class AdamW {
  /** Decay of the first moment. */
  readonly beta1: number;
  /** Decay of the second moment. */
  readonly beta2: number;
  /** Added to the denominator. */
  readonly eps: number;
  /** Decoupled weight decay coefficient. */
  readonly weightDecay: number;
  private readonly schedule: LearningRateSchedule;
  private readonly slots: ParamSlot[] = [];
  private readonly byName = new Map<string, ParamSlot>();
  private readonly byVariableName = new Map<string, ParamSlot>();
  private updates = 0;
  private disposed = false;

  constructor(params: NamedVariables, options: AdamWOptions = {}) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    for (const [key, value] of Object.entries({ beta1: this.beta1, beta2: this.beta2 })) {
      if (!(value >= 0 && value < 1)) throw new Error(`AdamW: ${key} must be in [0, 1), got ${value}`);
    }
    if (!(this.eps > 0)) throw new Error(`AdamW: eps must be > 0, got ${this.eps}`);
    if (!(this.weightDecay >= 0)) throw new Error(`AdamW: weightDecay must be >= 0, got ${this.weightDecay}`);
    const lr = options.learningRate ?? 1e-3;
    this.schedule = typeof lr === 'number' ? () => lr : lr;

    const decayFilter = options.decayFilter ?? defaultWeightDecayFilter;
    for (const [name, variable] of toNamedList(params)) {
      if (this.byName.has(name)) throw new Error(`AdamW: parameter name '${name}' is given twice`);
      if (this.byVariableName.has(variable.name)) {
        throw new Error(`AdamW: variable of '${name}' is already registered as '${this.byVariableName.get(variable.name)!.name}' (tied weights go in once)`);
      }
      if (variable.dtype !== 'float32') throw new Error(`AdamW: parameter '${name}' must be float32, got ${variable.dtype}`);
      const slot: ParamSlot = {
        name,
        variable,
        expAvg: zeroMoment(variable),
        expAvgSq: zeroMoment(variable),
        decay: this.weightDecay > 0 && decayFilter(name, variable.shape),
        step: 0,
      };
      this.slots.push(slot);
      this.byName.set(name, slot);
      this.byVariableName.set(variable.name, slot);
    }
    if (this.slots.length === 0) {
      throw new Error('AdamW: no parameters to optimise; pass model (with unfrozen parameters) or [name, variable] pairs');
    }
  }

  /** Updates applied so far (a skipped step is not an update). */
  get step(): number {
    return this.updates;
  }

  /** The rate the schedule gives at `step` (default: the optimizer's own update count). */
  learningRateAt(step: number = this.updates): number {
    return this.schedule(step);
  }

  /** Names of the parameters it updates, in registration order. */
  parameterNames(): string[] {
    return this.slots.map((s) => s.name);
  }

  /** Whether weight decay applies to the named parameter. */
  decays(name: string): boolean {
    return this.slot(name).decay;
  }

  /**
   * Applies one update. `grads` is keyed by tf variable name (what tf.variableGrads returns) or by parameter
   * name; parameters without a gradient are left alone, moments and step count included (as in PyTorch).
   * The caller keeps ownership of `grads`. `learningRate` overrides the schedule for this update.
   */
  applyGradients(grads: Record<string, tf.Tensor>, learningRate: number = this.learningRateAt()): void {
    this.assertLive();
    if (!Number.isFinite(learningRate) || learningRate < 0) {
      throw new Error(`AdamW: learning rate must be a finite number >= 0, got ${learningRate}; check the schedule`);
    }
    const targets: [ParamSlot, tf.Tensor][] = [];
    for (const [key, grad] of Object.entries(grads)) {
      const slot = this.byVariableName.get(key) ?? this.byName.get(key);
      if (!slot) {
        throw new Error(
          `AdamW: got a gradient for '${key}', which this optimizer does not hold. Build the optimizer from the same ` +
            'parameters you differentiate (model.trainableVariables()), after freezing/unfreezing.',
        );
      }
      if (!sameShape(grad.shape, slot.variable.shape)) {
        throw new Error(`AdamW: gradient for '${slot.name}' has shape [${grad.shape}], parameter is [${slot.variable.shape}]`);
      }
      targets.push([slot, grad]);
    }
    for (const [slot, grad] of targets) this.updateOne(slot, grad, learningRate);
    this.updates++;
  }

  // torch.optim.adamw._single_tensor_adamw, same order of float32 operations.
  private updateOne(slot: ParamSlot, grad: tf.Tensor, lr: number): void {
    slot.step++;
    const biasCorrection1 = 1 - this.beta1 ** slot.step;
    const biasCorrection2Sqrt = Math.sqrt(1 - this.beta2 ** slot.step);
    const stepSize = lr / biasCorrection1;
    tf.tidy(() => {
      let param: tf.Tensor = slot.variable;
      if (slot.decay) param = tf.mul(param, 1 - lr * this.weightDecay);
      // lerp: m + (1 - beta1) * (g - m)
      const expAvg = tf.add(slot.expAvg, tf.mul(tf.sub(grad, slot.expAvg), 1 - this.beta1));
      const expAvgSq = tf.add(tf.mul(slot.expAvgSq, this.beta2), tf.mul(tf.mul(grad, grad), 1 - this.beta2));
      const denom = tf.add(tf.div(tf.sqrt(expAvgSq), biasCorrection2Sqrt), this.eps);
      param = tf.add(param, tf.mul(tf.div(expAvg, denom), -stepSize));
      slot.expAvg.assign(expAvg);
      slot.expAvgSq.assign(expAvgSq);
      slot.variable.assign(param);
    });
  }

  /** The optimizer state by parameter name. The tensors are live: copy them to keep, never dispose. */
  getState(): AdamWState {
    this.assertLive();
    const tensors: Record<string, tf.Tensor> = {};
    const paramSteps: Record<string, number> = {};
    for (const slot of this.slots) {
      tensors[`${slot.name}.exp_avg`] = slot.expAvg;
      tensors[`${slot.name}.exp_avg_sq`] = slot.expAvgSq;
      paramSteps[slot.name] = slot.step;
    }
    return { step: this.updates, paramSteps, tensors };
  }

  /**
   * What keeps `state` from fitting this optimizer (missing, unexpected or wrong-shape moments, bad step
   * counts), one line each; empty when it fits. Lets a caller validate every part of a checkpoint before
   * applying any of it.
   */
  checkState(state: AdamWState): string[] {
    this.assertLive();
    const problems: string[] = [];
    const expected = new Set<string>();
    for (const slot of this.slots) {
      for (const [key, target] of [[`${slot.name}.exp_avg`, slot.expAvg], [`${slot.name}.exp_avg_sq`, slot.expAvgSq]] as const) {
        expected.add(key);
        const given = Object.hasOwn(state.tensors, key) ? state.tensors[key] : undefined;
        if (!given) problems.push(`missing ${key}`);
        else if (!sameShape(given.shape, target.shape)) problems.push(`${key}: expected [${target.shape}], got [${given.shape}]`);
      }
      const steps = Object.hasOwn(state.paramSteps, slot.name) ? state.paramSteps[slot.name] : undefined;
      if (!(Number.isInteger(steps) && steps! >= 0)) problems.push(`missing or invalid step count for ${slot.name}`);
    }
    for (const key of Object.keys(state.tensors)) if (!expected.has(key)) problems.push(`unexpected ${key}`);
    if (!(Number.isInteger(state.step) && state.step >= 0)) problems.push(`invalid step ${state.step}`);
    return problems;
  }

  /**
   * Restores a state saved by getState (values are copied; the caller keeps the given tensors). Every
   * parameter must be present with the right shapes; nothing changes unless the whole state is valid.
   */
  setState(state: AdamWState): void {
    const problems = this.checkState(state);
    if (problems.length > 0) {
      throw new Error(
        `AdamW.setState: the state does not fit this optimizer's parameters (${problems.length} problem(s)):\n  ` +
          `${problems.slice(0, 20).join('\n  ')}\nBuild the optimizer over the same trainable parameters as the run that saved it.`,
      );
    }
    for (const slot of this.slots) {
      tf.tidy(() => {
        slot.expAvg.assign(tf.cast(state.tensors[`${slot.name}.exp_avg`]!, 'float32'));
        slot.expAvgSq.assign(tf.cast(state.tensors[`${slot.name}.exp_avg_sq`]!, 'float32'));
      });
      slot.step = state.paramSteps[slot.name]!;
    }
    this.updates = state.step;
  }

  /** Frees the moments (not the parameters, which belong to the model). */
  dispose(): void {
    if (this.disposed) return;
    for (const slot of this.slots) {
      slot.expAvg.dispose();
      slot.expAvgSq.dispose();
    }
    this.disposed = true;
  }

  private slot(name: string): ParamSlot {
    const slot = this.byName.get(name);
    if (!slot) throw new Error(`AdamW: no parameter named '${name}'; known: ${this.parameterNames().slice(0, 10).join(', ')}...`);
    return slot;
  }

  private assertLive(): void {
    if (this.disposed) throw new Error('AdamW: this optimizer was disposed; create a new one');
  }
}

function toNamedList(params: NamedVariables): [string, tf.Variable][] {
  if (params instanceof Module) return params.namedParameters().filter(([, v]) => v.trainable);
  if (Symbol.iterator in Object(params)) return [...(params as Iterable<[string, tf.Variable]>)];
  return Object.entries(params as Record<string, tf.Variable>);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A zero moment buffer; tidy frees the initial tensor while the variable keeps the data. */
function zeroMoment(variable: tf.Variable): tf.Variable {
  return tf.tidy(() => tf.variable(tf.zerosLike(variable), false));
}
