/**
 * The typed contracts through which fusion strategies attach to the decoder (DESIGN.md, "Backbone extension
 * points"), modelled on torchtune's fusion modules: additions are registered under their own names next to the
 * wrapped weights, so a plain text checkpoint still loads into the fused model, and `freezeBackbone()` (or
 * `isExtensionParameter`) separates "the fusion" from the LLM in one call.
 *
 * Where extensions live in the state dict:
 *   model.inserted.{before|after}_{i}[_{name}].*     blocks inserted around layer i (insertBlock)
 *   model.layers.{i}.prefix_adapter.{prompts,gate}    LLaMA-Adapter prefix of layer i (addPrefixAdapter)
 *   model.layers.{i}.experts.{k}.*                   modality k's copy of layer i's routed parts (routeByModality)
 *   heads.{name}.*                                   extra output heads (addHead)
 */
import type * as tf from '@tensorflow/tfjs';
import type { KVCache, Module } from '@chimera/core';

/**
 * Which layers an extension goes to: one index, a list, `{ every: N }` (layers N-1, 2N-1, ..., OpenFlamingo's
 * convention, unless `start` gives the first), `{ last: N }` (the last N layers) or 'all'.
 */
export type LayerSelection = number | readonly number[] | { every: number; start?: number } | { last: number } | 'all';

/** What an inserted block, a head or an adapter sees of the current forward call. */
export interface BlockContext {
  /** Index of the layer the block sits before or after. */
  layer: number;
  /** Whether the block runs before or after the layer. */
  position: 'before' | 'after';
  /** The caller's opaque record (media features, cross-attention masks, ...), `{}` when none was given. */
  context: Readonly<Record<string, unknown>>;
  /** int32 [B, T] or null when the caller gave none (all text). */
  tokenModality: tf.Tensor | null;
  /** int32 [B, T] or [3, B, T] (M-RoPE): the positions of this call's tokens. */
  positions: tf.Tensor;
  /** [B, S] (S = cached + new tokens), 1 real / 0 padding, or null. */
  paddingMask: tf.Tensor | null;
  /** The self-attention bias [B, 1, T, S] in use, or null when the layers apply their own causal mask. */
  attentionBias: tf.Tensor | null;
  /** The KV cache of this call, or null. Its static (cross-attention) slot of `layer` is free for one block. */
  cache: KVCache | null;
  /** Tokens already in the cache before this call. */
  pastLength: number;
  /** Whether the model is in train mode. */
  training: boolean;
}

/**
 * A block inserted before or after a decoder layer (e.g. Flamingo's gated cross-attention). It maps the residual
 * stream [B, T, D] to a new one of the same shape; zero-initialised gates should make it the identity.
 */
export type InsertedBlock = Module & {
  /** hidden [B, T, D] -> new residual stream [B, T, D]. */
  forward(hidden: tf.Tensor, ctx: BlockContext): tf.Tensor;
};

/** Options of `insertBlock`. */
export interface InsertBlockOptions {
  /** The layers to insert before or after. */
  layer: LayerSelection;
  /** Run before the layer's own computation or after it (default 'after'). */
  position?: 'before' | 'after';
  /** Distinguishes several blocks at one slot: the block is registered as `{position}_{layer}_{name}`. */
  name?: string;
}

/** One registered block: where it runs and its state-dict prefix. */
export interface InsertedBlockInfo {
  /** The layer it sits next to. */
  layer: number;
  /** Before or after that layer. */
  position: 'before' | 'after';
  /** e.g. `model.inserted.after_3` */
  prefix: string;
  /** The block. */
  block: InsertedBlock;
}

/** An extra output head: hidden [B, T, D] (after the final norm) -> any tensor, returned in `output.heads[name]`. */
export type OutputHead = Module & {
  /** hidden [B, T, D] -> the head's output (returned in `output.heads[name]`). */
  forward(hidden: tf.Tensor): tf.Tensor;
};

/**
 * A part of a decoder layer that can get per-modality weights: attention projections (and QK-norms), the MLP, or the
 * two norms.
 */
export type RoutedPart = 'attention' | 'mlp' | 'norms';

/**
 * 'shared-attention': per-modality projections, FFN and norms with one global attention (MoT, CogVLM); 'towers': each
 * modality runs its own whole layer (X-Fusion).
 */
export type RoutingMode = 'shared-attention' | 'towers';

/** Options of `routeByModality`. */
export interface RouteByModalityOptions {
  /** Modalities routed (>= 2): tokenModality values 0 .. numModalities-1. Modality 0 keeps the original weights. */
  numModalities: number;
  /** Default: every layer. */
  layers?: LayerSelection;
  /**
   * Which weights get a copy per modality (default all three). 'attention': q/k/v/o projections (and QK-norms);
   * 'mlp': the feed-forward layer; 'norms': input_layernorm and post_attention_layernorm.
   */
  parts?: readonly RoutedPart[];
  /**
   * 'shared-attention' (default; Mixture-of-Transformers, CogVLM's visual expert): each token uses its own
   * modality's weights and self-attention runs once over all tokens. 'towers' (X-Fusion): each modality's whole
   * layer runs over the whole sequence and each token keeps its own modality's output (needs every part).
   */
  mode?: RoutingMode;
}

/** Options of `addPrefixAdapter` (LLaMA-Adapter). */
export interface PrefixAdapterOptions {
  /** Learnable prompt tokens per layer (LLaMA-Adapter uses 10). */
  length: number;
  /** Std of the prompt initialisation (default 0.02). */
  initStd?: number;
  /**
   * Key of `context` holding features added to every prompt: [B, D] (one vector per row, LLaMA-Adapter v1's
   * projected image feature) or [B, length, D] (one per prompt).
   */
  conditionKey?: string;
  /** How the zero-initialised per-head gate scales the prefix term: as is ('linear', the paper) or tanh(gate). */
  gateActivation?: 'linear' | 'tanh';
}

const EXTENSION_PATTERNS = [/^model\.inserted\./, /\.prefix_adapter\./, /^model\.layers\.\d+\.experts\./, /^heads\./];

/** True for parameters added by an extension point (not part of the plain LLM checkpoint). */
export function isExtensionParameter(name: string): boolean {
  return EXTENSION_PATTERNS.some((p) => p.test(name));
}

/** Resolves a LayerSelection to sorted, distinct layer indices in [0, numLayers). */
export function resolveLayers(selection: LayerSelection, numLayers: number, what: string): number[] {
  const fail = (detail: string): never => {
    throw new Error(
      `${what}: ${detail}; pass a layer index in [0, ${numLayers}), a list of them, { every: N }, { last: N } or 'all'`,
    );
  };
  let layers: number[];
  if (selection === 'all') layers = range(0, numLayers);
  else if (typeof selection === 'number') layers = [selection];
  else if (isLayerList(selection)) layers = [...selection];
  else if ('every' in selection) {
    const { every } = selection;
    if (!(Number.isInteger(every) && every >= 1)) fail(`every must be a positive integer, got ${every}`);
    const start = selection.start ?? every - 1;
    if (!(Number.isInteger(start) && start >= 0)) fail(`start must be a non-negative integer, got ${start}`);
    layers = range(0, numLayers).filter((i) => i >= start && (i - start) % every === 0);
  } else if ('last' in selection) {
    const { last } = selection;
    if (!(Number.isInteger(last) && last >= 1 && last <= numLayers)) fail(`last must be an integer in [1, ${numLayers}], got ${last}`);
    layers = range(numLayers - last, numLayers);
  } else {
    return fail(`unrecognised selection ${JSON.stringify(selection)}`);
  }
  for (const i of layers) if (!(Number.isInteger(i) && i >= 0 && i < numLayers)) fail(`layer ${i} does not exist`);
  if (layers.length === 0) fail(`the selection ${JSON.stringify(selection)} picks no layer`);
  return [...new Set(layers)].sort((a, b) => a - b);
}

function isLayerList(selection: LayerSelection): selection is readonly number[] {
  return Array.isArray(selection);
}

function range(start: number, end: number): number[] {
  return Array.from({ length: Math.max(0, end - start) }, (_, i) => start + i);
}
