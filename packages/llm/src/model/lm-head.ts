/**
 * The untied language-model head: hidden [..., D] -> logits [..., V] with `weight` [D, V] (Chimera's [in, out]
 * layout; HF's lm_head.weight is [V, D] and is transposed at the checkpoint boundary). Unlike a plain Linear it
 * can grow its vocabulary, keeping old columns and starting new ones at the mean column plus small noise, the
 * same rule as core's Embedding.resize.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, init } from '@chimera/core';

/**
 * The untied language-model head: hidden [..., D] -> logits [..., V] with `weight` [D, V] (HF's [V, D] transposed).
 * It can grow its vocabulary like core's Embedding.resize.
 */
export class LMHead extends Module {
  /** Input width D. */
  readonly dim: number;
  private table: tf.Variable; // [D, V]

  constructor(dim: number, vocabSize: number, std = 0.02) {
    super();
    this.dim = dim;
    this.table = this.addParameter('weight', init.normal([dim, vocabSize], std));
  }

  /** The weight [D, V] (the live variable: do not dispose). */
  get weight(): tf.Variable {
    return this.table;
  }

  /** Output width V. */
  get vocabSize(): number {
    return this.table.shape[1]!;
  }

  /** hidden [..., D] -> logits [..., V]. */
  forward(hidden: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      if (hidden.shape[hidden.rank - 1] !== this.dim) {
        throw new Error(`LMHead: expected last dimension ${this.dim}, got input of shape [${hidden.shape}]`);
      }
      const flat = tf.reshape(hidden, [-1, this.dim]) as tf.Tensor2D;
      return tf.reshape(tf.matMul(flat, this.table as tf.Tensor2D), [...hidden.shape.slice(0, -1), this.vocabSize]);
    });
  }

  /** Changes the vocabulary size in place (see the file comment); rebuild optimizers afterwards. */
  resize(newVocab: number, noiseScale = 0.01): void {
    if (!Number.isInteger(newVocab) || newVocab < 1) {
      throw new Error(`LMHead.resize: the new vocabulary size must be a positive integer, got ${newVocab}`);
    }
    const oldVocab = this.vocabSize;
    if (newVocab === oldVocab) return;
    const resized = tf.tidy(() => {
      const kept = tf.slice(this.table, [0, 0], [this.dim, Math.min(oldVocab, newVocab)]);
      if (newVocab < oldVocab) return kept;
      const { mean, variance } = tf.moments(this.table, 1, true); // [D, 1] each: statistics over the vocabulary
      const scale = tf.mul(tf.sqrt(tf.mean(variance)), noiseScale);
      const noise = tf.mul(init.normal([this.dim, newVocab - oldVocab], 1), scale);
      return tf.concat([kept, tf.add(mean, noise)], 1);
    });
    this.table = this.replaceParameter('weight', resized);
  }
}
