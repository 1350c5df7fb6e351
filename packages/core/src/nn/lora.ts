/**
 * LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): a frozen Linear W gains a
 * trainable low-rank update, y = x W + b + (alpha / r) * dropout(x) A B, with A [in, r] initialised like a
 * Linear and B [r, out] zeros, so an adapted model starts exactly at the base model. Adapters live in an
 * optional slot of Linear (`q_proj.lora.a`, `q_proj.lora.b`), so layers keep their fields, the base names stay
 * `q_proj.weight` / `q_proj.bias`, and a plain checkpoint still loads into an adapted model.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, matchName, type NamePattern } from './module';
import { Linear } from './linear';
import { Dropout } from './dropout';
import { fanInUniform } from './init';

/** Options of {@link applyLoRA} and {@link Linear.addLoRA}. */
export interface LoRAOptions {
  /** Rank r of the update (the width of A and B). */
  rank: number;
  /** The update is scaled by alpha / rank (default alpha = rank, i.e. scale 1). */
  alpha?: number;
  /** Dropout on the adapter's input in train mode (default 0). */
  dropout?: number;
}

/** The trainable low-rank pair of one Linear. Its parent Linear adds its output in forward unless merged. */
export class LoRAAdapter extends Module {
  /** Rank r. */
  readonly rank: number;
  /** The update's scale numerator (scale = alpha / rank). */
  readonly alpha: number;
  /** alpha / rank, applied to x A B. */
  readonly scale: number;
  /** Down projection A [in, r], initialised like a Linear. */
  readonly a: tf.Variable; // [in, r]
  /** Up projection B [r, out], zeros at init so the adapted layer starts equal to the base. */
  readonly b: tf.Variable; // [r, out]
  private readonly inputDropout: Dropout | null;
  /** True while scale * A B is folded into the base weight (then forward skips the adapter). */
  merged = false;

  constructor(inFeatures: number, outFeatures: number, options: LoRAOptions) {
    super();
    const { rank } = options;
    if (!Number.isInteger(rank) || rank < 1) {
      throw new Error(`LoRA: rank must be a positive integer, got ${rank}`);
    }
    this.rank = rank;
    this.alpha = options.alpha ?? rank;
    this.scale = this.alpha / rank;
    // A as PyTorch initialises a Linear with in_features inputs (PEFT's kaiming_uniform(a=sqrt(5))); B zeros.
    this.a = this.addParameter('a', fanInUniform([inFeatures, rank], inFeatures));
    this.b = this.addParameter('b', tf.zeros([rank, outFeatures]));
    this.inputDropout = options.dropout ? this.addModule('dropout', new Dropout(options.dropout)) : null;
  }

  /** x: [N, in] -> the update [N, out]. */
  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const input = (this.inputDropout ? this.inputDropout.forward(x) : x) as tf.Tensor2D;
      const down = tf.mul(tf.matMul(input, this.a as tf.Tensor2D), this.scale) as tf.Tensor2D; // [N, r]
      return tf.matMul(down, this.b as tf.Tensor2D);
    });
  }

  /** scale * A B: [in, out], the update as a weight delta. */
  delta(): tf.Tensor2D {
    return tf.tidy(() => tf.mul(tf.matMul(this.a as tf.Tensor2D, this.b as tf.Tensor2D), this.scale) as tf.Tensor2D);
  }
}

/** Every Linear in the tree that carries an adapter, with its dotted path. */
export function loraLayers(root: Module): [string, Linear][] {
  return root
    .namedModules()
    .filter((entry): entry is [string, Linear] => entry[1] instanceof Linear && entry[1].lora !== null);
}

/**
 * Adds an adapter to every Linear whose dotted path matches `pattern` (a glob as in freeze(): `**.q_proj`,
 * `layers.*.self_attn.*`, a RegExp or a predicate; a bare prefix selects everything below it), then freezes
 * every parameter except the adapters. Unfreeze extra parts (a projector, a head) afterwards if they should
 * train too. Linears that already have an adapter are left alone. Returns the newly adapted paths.
 */
export function applyLoRA(root: Module, pattern: NamePattern, options: LoRAOptions): string[] {
  const linears = root.namedModules().filter((entry): entry is [string, Linear] => entry[1] instanceof Linear);
  const matched = linears.filter(([path]) => matchName(pattern, path));
  if (matched.length === 0) {
    const available = linears.map(([path]) => path || '(root)');
    throw new Error(
      `applyLoRA: pattern ${String(pattern)} matched no Linear layer. Linear paths in this model: ` +
        `${available.slice(0, 20).join(', ')}${available.length > 20 ? `, ... (${available.length} in all)` : ''}`,
    );
  }
  const adapted: string[] = [];
  for (const [path, linear] of matched) {
    if (linear.lora) continue;
    linear.addLoRA(options);
    adapted.push(path);
  }
  root.freeze('**');
  for (const [, linear] of loraLayers(root)) linear.lora!.unfreeze('**');
  return adapted;
}

/** Folds scale * A B into every adapted base weight (for inference); forward outputs are unchanged. */
export function mergeLoRA(root: Module): number {
  let count = 0;
  for (const [, linear] of loraLayers(root)) if (linear.mergeLoRA()) count++;
  return count;
}

/** Undoes mergeLoRA, so the adapters train again. */
export function unmergeLoRA(root: Module): number {
  let count = 0;
  for (const [, linear] of loraLayers(root)) if (linear.unmergeLoRA()) count++;
  return count;
}

/** Only the adapter tensors, by dotted name: the small checkpoint to save after LoRA fine-tuning. */
export function loraStateDict(root: Module): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [path, linear] of loraLayers(root)) {
    const prefix = path ? `${path}.lora` : 'lora';
    for (const [name, variable] of linear.lora!.namedParameters(prefix)) out[name] = variable;
  }
  return out;
}
