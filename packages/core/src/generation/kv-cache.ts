/**
 * The key/value cache shared by attention layers and generation loops: per layer, the keys and values
 * [B, Hkv, S, Dh] of every token processed so far (self-attention), plus static entries for cross-attention
 * whose keys/values come from a fixed context (image or audio features) and are computed once.
 *
 * Storage choice: tfjs cannot write into a preallocated tensor in place (tinygrad's approach), so each append
 * concatenates along the sequence axis and frees the previous tensors. That copies O(S) per step; for the
 * model sizes TF.js trains and runs this costs far less than the attention itself.
 *
 * Ownership: the caller creates the cache, passes it to every forward call, and calls `dispose()` when done.
 * Tensors the cache holds are kept alive across `tf.tidy` (tf.keep); tensors it returns are its own, so do
 * not dispose them.
 */
import * as tf from '@tensorflow/tfjs';

/** The model shape a cache is built for. */
export interface KVCacheConfig {
  /** Attention layers that use the cache. */
  numLayers: number;
  /** Key/value heads per layer (Hkv). */
  numKvHeads: number;
  /** Width of one head (Dh). */
  headDim: number;
  /** Rows of the batch (B). */
  batch: number;
}

/** Keys and values [B, Hkv, S, Dh] (a type alias so tf.tidy can return it). */
export type KeyValues = {
  /** Keys [B, Hkv, S, Dh]. */
  keys: tf.Tensor;
  /** Values [B, Hkv, S, Dh]. */
  values: tf.Tensor;
};

/** What a layer using the cache is: checked against the cache's own shape. */
export interface KVCacheUser {
  /** The layer's key/value heads. */
  numKvHeads: number;
  /** The layer's head width. */
  headDim: number;
  /** Rows of the batch the layer is running. */
  batch: number;
  /** Layer index about to be read or written. */
  layer?: number;
  /** Number of layers of the model (checked when given). */
  numLayers?: number;
}

/**
 * Per-layer keys and values [B, Hkv, S, Dh] of the tokens processed so far, plus static cross-attention entries
 * computed once from a fixed context. The caller creates it, passes it to every forward call and calls `dispose()`;
 * tensors it returns belong to the cache.
 */
export class KVCache {
  /** Layers the cache has slots for. */
  readonly numLayers: number;
  /** Key/value heads per layer. */
  readonly numKvHeads: number;
  /** Width of one head. */
  readonly headDim: number;
  /** Rows of the batch. */
  readonly batch: number;
  private readonly selfEntries: (KeyValues | null)[];
  private readonly staticEntries: (KeyValues | null)[];
  private disposed = false;

  constructor(config: KVCacheConfig) {
    for (const key of ['numLayers', 'numKvHeads', 'headDim', 'batch'] as const) {
      const v = config[key];
      if (!Number.isInteger(v) || v <= 0) throw new Error(`KVCache: ${key} must be a positive integer, got ${v}`);
    }
    this.numLayers = config.numLayers;
    this.numKvHeads = config.numKvHeads;
    this.headDim = config.headDim;
    this.batch = config.batch;
    this.selfEntries = new Array<KeyValues | null>(config.numLayers).fill(null);
    this.staticEntries = new Array<KeyValues | null>(config.numLayers).fill(null);
  }

  /** Tokens processed so far: the longest self-attention entry (all layers agree between forward calls). */
  get length(): number {
    this.assertAlive();
    return Math.max(0, ...this.selfEntries.map((e) => (e ? e.keys.shape[2]! : 0)));
  }

  /** Self-attention length of one layer (0 before its first append). */
  layerLength(layer: number): number {
    this.assertLayer(layer);
    return this.selfEntries[layer]?.keys.shape[2] ?? 0;
  }

  /** The self-attention keys/values of a layer, or null before its first append. Owned by the cache. */
  get(layer: number): KeyValues | null {
    this.assertLayer(layer);
    return this.selfEntries[layer] ?? null;
  }

  /**
   * Appends the new tokens' keys/values [B, Hkv, T, Dh] to a layer and returns the full [B, Hkv, S+T, Dh].
   * The inputs stay the caller's; the returned tensors belong to the cache and live until the next append,
   * `reset()` or `dispose()`.
   */
  append(layer: number, keys: tf.Tensor, values: tf.Tensor): KeyValues {
    this.assertLayer(layer);
    this.assertEntryShape('append', layer, keys, values);
    const previous = this.selfEntries[layer];
    const next: KeyValues = previous
      ? {
          keys: tf.keep(tf.concat([previous.keys, keys], 2)),
          values: tf.keep(tf.concat([previous.values, values], 2)),
        }
      : { keys: tf.keep(tf.clone(keys)), values: tf.keep(tf.clone(values)) };
    if (previous) {
      previous.keys.dispose();
      previous.values.dispose();
    }
    this.selfEntries[layer] = next;
    return next;
  }

  /** Cross-attention keys/values of a layer computed from the context, or null if not stored yet. */
  getStatic(layer: number): KeyValues | null {
    this.assertLayer(layer);
    return this.staticEntries[layer] ?? null;
  }

  /** Stores a layer's cross-attention keys/values (replacing any previous ones). Returns the stored copies. */
  setStatic(layer: number, keys: tf.Tensor, values: tf.Tensor): KeyValues {
    this.assertLayer(layer);
    this.assertEntryShape('setStatic', layer, keys, values);
    const previous = this.staticEntries[layer];
    const stored = { keys: tf.keep(tf.clone(keys)), values: tf.keep(tf.clone(values)) };
    if (previous) {
      previous.keys.dispose();
      previous.values.dispose();
    }
    this.staticEntries[layer] = stored;
    return stored;
  }

  /** Drops static entries (one layer, or all): needed when the context (e.g. the image) changes. */
  clearStatic(layer?: number): void {
    this.assertAlive();
    const layers = layer === undefined ? [...this.staticEntries.keys()] : [layer];
    for (const l of layers) {
      this.assertLayer(l);
      const entry = this.staticEntries[l];
      if (entry) {
        entry.keys.dispose();
        entry.values.dispose();
      }
      this.staticEntries[l] = null;
    }
  }

  /** Frees every entry but keeps the cache usable (a new sequence with the same model). */
  reset(): void {
    this.assertAlive();
    for (const entries of [this.selfEntries, this.staticEntries]) {
      for (let l = 0; l < entries.length; l++) {
        entries[l]?.keys.dispose();
        entries[l]?.values.dispose();
        entries[l] = null;
      }
    }
  }

  /** Frees every tensor; the cache cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.reset();
    this.disposed = true;
  }

  /** True after `dispose()`. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Fails clearly when the cache was made for another model shape or batch. */
  assertCompatible(user: KVCacheUser): void {
    this.assertAlive();
    const mismatches: string[] = [];
    if (user.numKvHeads !== this.numKvHeads) mismatches.push(`numKvHeads ${user.numKvHeads} vs ${this.numKvHeads}`);
    if (user.headDim !== this.headDim) mismatches.push(`headDim ${user.headDim} vs ${this.headDim}`);
    if (user.batch !== this.batch) mismatches.push(`batch ${user.batch} vs ${this.batch}`);
    if (user.numLayers !== undefined && user.numLayers !== this.numLayers) {
      mismatches.push(`numLayers ${user.numLayers} vs ${this.numLayers}`);
    }
    if (user.layer !== undefined && !(Number.isInteger(user.layer) && user.layer >= 0 && user.layer < this.numLayers)) {
      mismatches.push(`layer index ${user.layer} outside [0, ${this.numLayers})`);
    }
    if (mismatches.length > 0) {
      throw new Error(
        `KVCache: a cache from another model (model vs cache: ${mismatches.join('; ')}). This cache was made for ` +
          `${this.describe()}. Create a new KVCache with the model's numLayers, numKvHeads, headDim and batch.`,
      );
    }
  }

  private describe(): string {
    return `numLayers ${this.numLayers}, numKvHeads ${this.numKvHeads}, headDim ${this.headDim}, batch ${this.batch}`;
  }

  private assertAlive(): void {
    if (this.disposed) throw new Error('KVCache: used after dispose(); create a new KVCache for a new generation');
  }

  private assertLayer(layer: number): void {
    this.assertAlive();
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.numLayers) {
      throw new Error(
        `KVCache: layer index ${layer} outside [0, ${this.numLayers}); pass the layer's index within the model ` +
          `(or a cache from another model: this one was made for ${this.describe()})`,
      );
    }
  }

  private assertEntryShape(op: string, layer: number, keys: tf.Tensor, values: tf.Tensor): void {
    const ok = (t: tf.Tensor) =>
      t.rank === 4 && t.shape[0] === this.batch && t.shape[1] === this.numKvHeads && t.shape[3] === this.headDim;
    if (!ok(keys) || !ok(values) || keys.shape[2] !== values.shape[2]) {
      throw new Error(
        `KVCache.${op}(layer ${layer}): expected keys and values [${this.batch}, ${this.numKvHeads}, T, ${this.headDim}] ` +
          `([B, Hkv, T, Dh]), got keys [${keys.shape}] and values [${values.shape}]; a cache from another model ` +
          `(this one was made for ${this.describe()})?`,
      );
    }
  }
}
