/**
 * Embedding table: ids -> rows of `weight` [numEmbeddings, dim] by gather. `attend` reuses the table as a
 * tied output head (Press & Wolf 2017), and `resize` grows the vocabulary when tokens are added, initialising
 * new rows at the mean of the old ones (Hewitt 2021) so they start as "an average token" instead of noise.
 *
 * The tied head needs weight^T [dim, numEmbeddings]. Transposing the table on every call costs ~30x the
 * product itself at one token (vocab 32000 x 288 on wasm: ~63 ms against ~2 ms, since XNNPACK also repacks a
 * fresh right-hand operand), so outside gradient recording `attend` keeps one transposed copy, tied to the data
 * it was made from: a tf.Variable gets a new dataId on every `assign` (an optimizer step, `loadStateDict`) and
 * `resize` makes a new variable, so a copy whose source is not the current data is never used, only rebuilt.
 * Tensor data is immutable in tfjs, so equal dataIds mean equal values. Under a gradient tape the head is the
 * plain differentiable transpose, and a stale copy is freed there so training holds no second table.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module';
import { normal } from './init';

/** Construction options of {@link Embedding}. */
export interface EmbeddingOptions {
  /** Std of the normal initialisation (default 0.02, the initializer_range of GPT-2 and Llama). */
  std?: number;
  /** Initial table [numEmbeddings, dim]; overrides `std`. Ownership passes to the layer. */
  weightInit?: tf.Tensor;
}

/** Options of {@link Embedding.resize}. */
export interface EmbeddingResizeOptions {
  /** Std of the noise added to new rows, relative to the std of the existing table (default 0.01). */
  noiseScale?: number;
}

/**
 * Lookup table: int32 ids [...] -> rows of `weight` [..., dim]. `attend` reuses the table as a tied output head and
 * `resize` grows the vocabulary.
 */
export class Embedding extends Module {
  /** Width of one row. */
  readonly dim: number;
  private table: tf.Variable; // [numEmbeddings, dim]
  /** weight^T [dim, numEmbeddings] for attend() without a gradient tape, and the data it was made from. */
  private head: { transposed: tf.Tensor2D; variable: tf.Variable; dataId: object } | null = null;

  constructor(numEmbeddings: number, dim: number, options: EmbeddingOptions = {}) {
    super();
    if (!Number.isInteger(numEmbeddings) || numEmbeddings < 1 || !Number.isInteger(dim) || dim < 1) {
      throw new Error(`Embedding: numEmbeddings and dim must be positive integers, got ${numEmbeddings} and ${dim}`);
    }
    this.dim = dim;
    const init = options.weightInit ?? normal([numEmbeddings, dim], options.std ?? 0.02);
    if (init.rank !== 2 || init.shape[0] !== numEmbeddings || init.shape[1] !== dim) {
      throw new Error(`Embedding: weightInit must be [${numEmbeddings}, ${dim}], got [${init.shape}]`);
    }
    this.table = this.addParameter('weight', init);
  }

  /** The table [numEmbeddings, dim] (the live variable: do not dispose). */
  get weight(): tf.Variable {
    return this.table;
  }

  /** Rows in the table (the vocabulary size). */
  get numEmbeddings(): number {
    return this.table.shape[0]!;
  }

  /** ids: int32 [...] -> [..., dim]. Reads the ids to check their range (ids are small next to activations). */
  forward(ids: tf.Tensor): tf.Tensor {
    if (ids.dtype !== 'int32') {
      throw new Error(
        `Embedding: ids must be int32, got ${ids.dtype} of shape [${ids.shape}]; cast with tf.cast(ids, 'int32')`,
      );
    }
    this.checkRange(ids);
    return tf.tidy(() => tf.gather(this.table, ids));
  }

  /** Tied output head: h [..., dim] -> logits [..., numEmbeddings] = h @ weight^T. */
  attend(h: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      if (h.shape[h.rank - 1] !== this.dim) {
        throw new Error(`Embedding.attend: expected last dimension ${this.dim}, got input of shape [${h.shape}]`);
      }
      const flat = tf.reshape(h, [-1, this.dim]) as tf.Tensor2D;
      // A plain matMul against weight^T: the transpose-flag matMul is ~10x slower on wasm (ENGINE.md).
      const logits = tf.matMul(flat, this.headMatrix());
      return tf.reshape(logits, [...h.shape.slice(0, -1), this.numEmbeddings]);
    });
  }

  /**
   * Frees the transposed copy of the table that `attend` keeps for inference (one more [dim, numEmbeddings]
   * tensor while it exists). The next `attend` outside a gradient tape makes a new one; `dispose` frees it too.
   */
  releaseHeadCache(): void {
    this.head?.transposed.dispose();
    this.head = null;
  }

  override dispose(): void {
    this.releaseHeadCache();
    super.dispose();
  }

  /** weight^T: differentiable under a gradient tape, else the kept copy, rebuilt when the table's data changed. */
  private headMatrix(): tf.Tensor2D {
    const current = this.head !== null && this.head.variable === this.table && this.head.dataId === this.table.dataId;
    if (tf.engine().isTapeOn()) {
      if (!current) this.releaseHeadCache();
      return tf.transpose(this.table) as tf.Tensor2D;
    }
    if (!current) {
      this.releaseHeadCache();
      // keep: the copy outlives the caller's tidy scopes; the module owns it.
      this.head = { transposed: tf.keep(tf.transpose(this.table) as tf.Tensor2D), variable: this.table, dataId: this.table.dataId };
    }
    return this.head!.transposed;
  }

  /**
   * Changes the vocabulary size in place. Existing rows are kept (the first `newNum` when shrinking); new rows
   * are the mean of the old rows plus small seeded noise. The weight variable is replaced, so build the
   * optimizer after resizing.
   */
  resize(newNum: number, options: EmbeddingResizeOptions = {}): void {
    if (!Number.isInteger(newNum) || newNum < 1) {
      throw new Error(`Embedding.resize: the new size must be a positive integer, got ${newNum}`);
    }
    const oldNum = this.numEmbeddings;
    if (newNum === oldNum) return;
    const noiseScale = options.noiseScale ?? 0.01;
    const resized = tf.tidy(() => {
      const kept = tf.slice(this.table, [0, 0], [Math.min(oldNum, newNum), this.dim]);
      if (newNum < oldNum) return kept;
      const { mean, variance } = tf.moments(this.table, 0, true); // [1, dim] each
      const scale = tf.mul(tf.sqrt(tf.mean(variance)), noiseScale);
      const noise = tf.mul(normal([newNum - oldNum, this.dim], 1), scale);
      return tf.concat([kept, tf.add(mean, noise)], 0);
    });
    this.releaseHeadCache();
    this.table = this.replaceParameter('weight', resized);
  }

  private checkRange(ids: tf.Tensor): void {
    const values = ids.dataSync();
    const vocab = this.numEmbeddings;
    for (let i = 0; i < values.length; i++) {
      const id = values[i]!;
      if (id < 0 || id >= vocab) {
        throw new Error(
          `Embedding: id ${id} at flat position ${i} of ids [${ids.shape}] is outside the vocabulary [0, ${vocab}); ` +
            'check the tokenizer matches the model, or resize() the embedding after adding tokens',
        );
      }
    }
  }
}
