/**
 * The codebook of a VQ-VAE (van den Oord et al. 2017) as LlamaGen/Janus use it: nearest code by (optionally
 * l2-normalised) distance, the straight-through estimator, codebook and commitment losses, LlamaGen's entropy
 * loss; plus what training needs to keep every code alive: EMA updates (the alternative to the codebook loss),
 * usage and perplexity, and dead-code restarts from recent encoder outputs.
 */
import * as tf from '@tensorflow/tfjs';
import { Embedding, Module, init } from '@chimera/core';
import { stopGradient } from './stop-gradient';

/** How codes move: by the codebook loss, or by exponential moving averages. */
export type CodebookUpdate = 'loss' | 'ema';

/** Construction options of {@link VectorQuantizer}. */
export interface VectorQuantizerOptions {
  /** Codes n_e. */
  codebookSize: number;
  /** Width e_dim. */
  codebookDim: number;
  /** l2-normalise latents and codes (default true). */
  l2Norm?: boolean;
  /** Commitment weight (default 0.25). */
  beta?: number;
  /** Entropy-loss weight (default 0). */
  entropyLossRatio?: number;
  /** Entropy-loss temperature (default 0.01). */
  entropyTemperature?: number;
  /** 'loss' (default): codes move by the codebook loss; 'ema': by exponential moving averages (not trainable). */
  update?: CodebookUpdate;
  /** EMA decay (default 0.99). */
  decay?: number;
  /** EMA Laplace smoothing epsilon (default 1e-5). */
  epsilon?: number;
}

/** The codebook's training losses, each a scalar. */
export interface QuantizeLosses {
  /** mean (sg(z) - e)^2: moves codes toward latents ('loss' update only; 0 with EMA). */
  codebook: tf.Scalar;
  /** beta * mean (z - sg(e))^2: keeps latents near their codes. */
  commitment: tf.Scalar;
  /** ratio * (mean per-sample entropy - entropy of the mean assignment): confident and diverse codes. */
  entropy: tf.Scalar;
}

/** What {@link VectorQuantizer.forward} returns (the caller disposes every tensor). */
export interface QuantizeResult {
  /** z + sg(e - z): the codes' values forward, the identity backward (straight-through) [..., dim]. */
  quantized: tf.Tensor;
  /** Nearest code per position, int32 [...]. */
  codes: tf.Tensor;
  /** Codebook, commitment and entropy losses. */
  losses: QuantizeLosses;
  /** The matched latents (normalised when l2Norm), for EMA updates and restarts [..., dim]. */
  latents: tf.Tensor;
}

/** The codebook: nearest-code matching, straight-through estimator, losses, EMA updates, usage and restarts. */
export class VectorQuantizer extends Module {
  /** The code table [codebookSize, codebookDim] (`quantize.embedding.weight`). */
  readonly embedding: Embedding;
  /** Number of codes. */
  readonly codebookSize: number;
  /** Width of one code. */
  readonly codebookDim: number;
  /** Whether latents and codes are l2-normalised before matching. */
  readonly l2Norm: boolean;
  /** Commitment weight. */
  readonly beta: number;
  /** Entropy-loss weight (0: off). */
  readonly entropyLossRatio: number;
  /** Temperature of the entropy loss's soft assignment. */
  readonly entropyTemperature: number;
  /** 'loss' or 'ema'. */
  readonly update: CodebookUpdate;
  /** EMA decay. */
  readonly decay: number;
  /** EMA Laplace smoothing. */
  readonly epsilon: number;
  /** EMA state (not in the state dict: a loaded codebook restarts its averages from its codes). */
  private clusterSize: tf.Tensor1D | null = null;
  private embedSum: tf.Tensor2D | null = null;
  /** Update count at which each code was last chosen (usage and dead codes). */
  private lastUsed: Int32Array;
  /** Update count at which each code was last restarted: a grace period for dead codes, not usage. */
  private restartedAt: Int32Array;
  private updates = 0;
  private lastPerplexity = 0;

  constructor(options: VectorQuantizerOptions) {
    super();
    const { codebookSize: n, codebookDim: d } = options;
    if (!(Number.isInteger(n) && n >= 2)) throw new Error(`VectorQuantizer: codebookSize must be an integer >= 2, got ${n}`);
    if (!(Number.isInteger(d) && d >= 1)) throw new Error(`VectorQuantizer: codebookDim must be a positive integer, got ${d}`);
    this.codebookSize = n;
    this.codebookDim = d;
    this.l2Norm = options.l2Norm ?? true;
    this.beta = options.beta ?? 0.25;
    this.entropyLossRatio = options.entropyLossRatio ?? 0;
    this.entropyTemperature = options.entropyTemperature ?? 0.01;
    this.update = options.update ?? 'loss';
    if (this.update !== 'loss' && this.update !== 'ema') throw new Error(`VectorQuantizer: update must be 'loss' or 'ema', got ${JSON.stringify(this.update)}`);
    this.decay = options.decay ?? 0.99;
    this.epsilon = options.epsilon ?? 1e-5;
    if (!(this.decay > 0 && this.decay < 1)) throw new Error(`VectorQuantizer: decay must be in (0, 1), got ${this.decay}`);
    // LlamaGen: uniform(-1/n, 1/n), then l2-normalised rows.
    const table: tf.Tensor = tf.tidy(() => {
      const drawn = init.uniform([n, d], 1 / n);
      return this.l2Norm ? normalize(drawn) : drawn;
    });
    this.embedding = this.addModule('embedding', new Embedding(n, d, { weightInit: table }));
    if (this.update === 'ema') this.embedding.weight.trainable = false;
    this.lastUsed = new Int32Array(n).fill(-1);
    this.restartedAt = new Int32Array(n).fill(-1);
  }

  /** The codes as matched: [n, dim], normalised when l2Norm (caller disposes). */
  codes(): tf.Tensor2D {
    return tf.tidy(() => (this.l2Norm ? normalize(this.embedding.weight) : tf.clone(this.embedding.weight)) as tf.Tensor2D);
  }

  /** Quantizes latents z [..., dim]. Records usage when `record` (training steps). */
  forward(z: tf.Tensor, options: { record?: boolean } = {}): QuantizeResult {
    this.checkLatents(z, 'forward');
    const result = tf.tidy(() => {
      const flat = tf.reshape(z, [-1, this.codebookDim]) as tf.Tensor2D; // [N, d]
      const zn = this.l2Norm ? normalize(flat) : flat;
      const table: tf.Tensor2D = this.l2Norm ? normalize(this.embedding.weight) : (this.embedding.weight as tf.Tensor2D);
      const usedTable = this.update === 'ema' ? stopGradient(table) : table;
      const distances = squaredDistances(zn, usedTable); // [N, n]
      // Indices rebuilt from their values: off the gradient tape (tfjs would otherwise ask gather for an
      // integer-typed gradient of them).
      const codes = tf.tensor1d(tf.argMin(distances, 1).dataSync() as Int32Array, 'int32'); // [N]
      const chosen = tf.gather(usedTable, codes); // [N, d]
      const codebook = this.update === 'loss' ? tf.mean(tf.square(tf.sub(chosen, stopGradient(zn)))) : tf.scalar(0);
      const commitment = tf.mul(this.beta, tf.mean(tf.square(tf.sub(stopGradient(chosen), zn))));
      const entropy =
        this.entropyLossRatio > 0 ? tf.mul(this.entropyLossRatio, entropyLoss(tf.neg(distances), this.entropyTemperature)) : tf.scalar(0);
      const quantized = tf.add(zn, stopGradient(tf.sub(chosen, zn)));
      const outShape = z.shape;
      return {
        quantized: tf.reshape(quantized, outShape),
        codes: tf.reshape(tf.cast(codes, 'int32'), outShape.slice(0, -1)),
        latents: tf.reshape(stopGradient(zn), outShape),
        losses: { codebook: codebook as tf.Scalar, commitment: commitment as tf.Scalar, entropy: entropy as tf.Scalar },
      };
    });
    if (options.record) this.record(result.codes);
    return result;
  }

  /** Nearest codes of latents z [..., dim] -> int32 [...]. */
  encode(z: tf.Tensor): tf.Tensor {
    this.checkLatents(z, 'encode');
    return tf.tidy(() => {
      const flat = tf.reshape(z, [-1, this.codebookDim]) as tf.Tensor2D;
      const zn = this.l2Norm ? normalize(flat) : flat;
      const codes = tf.argMin(squaredDistances(zn, this.codes()), 1);
      return tf.reshape(tf.cast(codes, 'int32'), z.shape.slice(0, -1));
    });
  }

  /** Code values of ids [...] -> [..., dim]. Throws naming the first id outside [0, codebookSize). */
  lookup(ids: tf.Tensor): tf.Tensor {
    checkCodes(ids, this.codebookSize, 'VectorQuantizer.lookup');
    return tf.tidy(() => tf.reshape(tf.gather(this.codes(), tf.reshape(tf.cast(ids, 'int32'), [-1])), [...ids.shape, this.codebookDim]));
  }

  /**
   * EMA step ('ema' update): cluster sizes and code sums decay toward this batch's assignments, with Laplace
   * smoothing so no size reaches zero. `latents` and `codes` come from `forward` (the matched, detached latents).
   */
  emaUpdate(latents: tf.Tensor, codes: tf.Tensor): void {
    if (this.update !== 'ema') throw new Error("VectorQuantizer.emaUpdate: this codebook updates by loss; build it with update: 'ema'");
    const n = this.codebookSize;
    if (!this.clusterSize || !this.embedSum) {
      this.clusterSize = tf.ones([n]);
      this.embedSum = tf.tidy(() => tf.clone(this.embedding.weight) as tf.Tensor2D);
    }
    const [size, sum, table] = tf.tidy(() => {
      const flat = tf.reshape(latents, [-1, this.codebookDim]);
      // int32 one-hot then a cast: wasm's OneHot ignores a float32 dtype (it writes integer bits).
      const onehot = tf.cast(tf.oneHot(tf.reshape(codes, [-1]), n), 'float32'); // [N, n]
      const counts = tf.sum(onehot, 0); // [n]
      const sums = tf.matMul(onehot, flat, true, false); // [n, d]
      const size = tf.add(tf.mul(this.clusterSize!, this.decay), tf.mul(counts, 1 - this.decay)) as tf.Tensor1D;
      const sum = tf.add(tf.mul(this.embedSum!, this.decay), tf.mul(sums, 1 - this.decay)) as tf.Tensor2D;
      const total = tf.sum(size);
      const smoothed = tf.mul(tf.div(tf.add(size, this.epsilon), tf.add(total, n * this.epsilon)), total); // [n]
      const table = tf.div(sum, tf.expandDims(smoothed, 1));
      return [size, sum, table];
    });
    this.clusterSize.dispose();
    this.embedSum.dispose();
    this.clusterSize = size;
    this.embedSum = sum;
    this.embedding.weight.assign(table);
    table.dispose();
  }

  /**
   * Re-seeds every code not chosen in the last `deadAfter` recorded updates with a random row of `latents`
   * ([..., dim], e.g. the batch's matched latents), and resets its EMA state. Returns how many codes moved.
   */
  restartDeadCodes(latents: tf.Tensor, deadAfter: number, seed = this.updates): number {
    const dead: number[] = [];
    for (let i = 0; i < this.codebookSize; i++) {
      if (this.updates - Math.max(this.lastUsed[i]!, this.restartedAt[i]!) > deadAfter) dead.push(i);
    }
    if (dead.length === 0) return 0;
    const rows = latents.size / this.codebookDim;
    const picks = dead.map((_, i) => (Math.imul(seed + 1, 2654435761) + Math.imul(i + 1, 40503)) >>> 0).map((h) => h % rows);
    const table = tf.tidy(() => {
      const flat = tf.reshape(latents, [-1, this.codebookDim]);
      const noise = tf.mul(tf.randomNormal([dead.length, this.codebookDim], 0, 1, 'float32', seed), 1e-3);
      const fresh = tf.add(tf.gather(flat, tf.tensor1d(picks, 'int32')), noise);
      return tf.tensorScatterUpdate(this.embedding.weight, tf.tensor2d(dead, [dead.length, 1], 'int32'), fresh);
    });
    this.embedding.weight.assign(table);
    table.dispose();
    if (this.clusterSize && this.embedSum) {
      const [size, sum] = tf.tidy(() => {
        const idx = tf.tensor2d(dead, [dead.length, 1], 'int32');
        return [
          tf.tensorScatterUpdate(this.clusterSize!, idx, tf.ones([dead.length])) as tf.Tensor1D,
          tf.tensorScatterUpdate(this.embedSum!, idx, tf.gather(this.embedding.weight, tf.tensor1d(dead, 'int32'))) as tf.Tensor2D,
        ];
      });
      this.clusterSize.dispose();
      this.embedSum.dispose();
      this.clusterSize = size;
      this.embedSum = sum;
    }
    // A restarted code gets deadAfter updates to be chosen before it counts as dead again; it counts as used
    // only once chosen (otherwise usage() would report restarts as usage).
    for (const i of dead) this.restartedAt[i] = this.updates;
    return dead.length;
  }

  /** Fraction of codes chosen within the last `window` recorded updates. */
  usage(window = 100): number {
    let used = 0;
    for (let i = 0; i < this.codebookSize; i++) if (this.lastUsed[i]! >= 0 && this.updates - this.lastUsed[i]! < window) used++;
    return used / this.codebookSize;
  }

  /** exp(entropy) of the code frequencies of the last recorded batch: how many codes it effectively used. */
  perplexity(): number {
    return this.lastPerplexity;
  }

  /** Recorded training updates so far. */
  get updateCount(): number {
    return this.updates;
  }

  override dispose(): void {
    this.clusterSize?.dispose();
    this.embedSum?.dispose();
    this.clusterSize = null;
    this.embedSum = null;
    super.dispose();
  }

  private record(codes: tf.Tensor): void {
    this.updates++;
    const ids = codes.dataSync();
    const counts = new Map<number, number>();
    for (const id of ids) {
      this.lastUsed[id] = this.updates;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    let entropy = 0;
    for (const c of counts.values()) {
      const p = c / ids.length;
      entropy -= p * Math.log(p);
    }
    this.lastPerplexity = Math.exp(entropy);
  }

  private checkLatents(z: tf.Tensor, where: string): void {
    if (z.rank < 2 || z.shape[z.rank - 1] !== this.codebookDim) {
      throw new Error(`VectorQuantizer.${where}: latents must be [..., ${this.codebookDim}] (the codebook width), got [${z.shape}]`);
    }
  }
}

/** Rows scaled to unit l2 norm (F.normalize, eps 1e-12). */
export function normalize(x: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', -1, true), 1e-12)) as tf.Tensor2D);
}

/** ||z||^2 + ||e||^2 - 2 z e^T: [N, d] x [n, d] -> [N, n]. */
function squaredDistances(z: tf.Tensor2D, table: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() =>
    tf.sub(tf.add(tf.sum(tf.square(z), 1, true), tf.transpose(tf.sum(tf.square(table), 1, true))), tf.mul(2, tf.matMul(z, table, false, true))) as tf.Tensor2D,
  );
}

/** LlamaGen's entropy loss on affinities [N, n]: mean sample entropy minus the entropy of the mean assignment. */
export function entropyLoss(affinity: tf.Tensor2D, temperature: number): tf.Scalar {
  return tf.tidy(() => {
    const logits = tf.div(affinity, temperature);
    const probs = tf.softmax(logits);
    const logProbs = tf.logSoftmax(tf.add(logits, 1e-5));
    const avg = tf.mean(probs, 0);
    const avgEntropy = tf.neg(tf.sum(tf.mul(avg, tf.log(tf.add(avg, 1e-5)))));
    const sampleEntropy = tf.neg(tf.mean(tf.sum(tf.mul(probs, logProbs), 1)));
    return tf.sub(sampleEntropy, avgEntropy) as tf.Scalar;
  });
}

/** Throws naming the first id that is not an integer in [0, size). */
export function checkCodes(ids: tf.Tensor, size: number, where: string): void {
  const values = ids.dataSync();
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!(Number.isInteger(v) && v >= 0 && v < size)) {
      throw new Error(`${where}: code ${v} at flat position ${i} of ids [${ids.shape}] is outside the codebook [0, ${size}); codes come from encode() of a tokenizer with ${size} codes`);
    }
  }
}
