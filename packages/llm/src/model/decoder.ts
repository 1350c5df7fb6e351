/**
 * The decoder stack without the LM head (HF's LlamaModel, state-dict prefix `model.`): token embedding, the
 * decoder layers with the blocks inserted around them, and the final RMSNorm. It owns the per-call setup every
 * layer shares (positions, rotary tables, attention bias, token routing) and the extension registries.
 */
import * as tf from '@tensorflow/tfjs';
import { Embedding, KVCache, Module, RMSNorm, RotaryEmbedding, type RotaryTables } from '@chimera/core';
import { headDimOf, type LlamaConfig } from '../config';
import { DecoderLayer, type LayerRun } from './decoder-layer';
import {
  resolveLayers,
  type BlockContext,
  type InsertBlockOptions,
  type InsertedBlock,
  type InsertedBlockInfo,
  type LayerSelection,
  type PrefixAdapterOptions,
  type RouteByModalityOptions,
  type RoutedPart,
} from './extension-points';
import { InsertedBlocks } from './inserted-blocks';
import {
  checkAttentionBias,
  checkPaddingMask,
  checkPositions,
  defaultPositions,
  paddingBias,
  type CausalLMInputs,
} from './inputs';
import type { PrefixAdapter } from './prefix-adapter';
import { TokenRouting, type ModalityExperts } from './routing';

/** What {@link LlamaModel.forward} returns; the caller owns the tensors. */
export type DecoderOutput = {
  /** [B, T, D] after the final norm. */
  hidden: tf.Tensor;
  /**
   * With `outputHiddenStates`: numLayers + 1 tensors [B, T, D]. [0] is the input embeddings; [i + 1] is the
   * residual stream after layer i and the blocks inserted after it (before the final norm, unlike HF's last entry).
   */
  hiddenStates?: tf.Tensor[];
};

const ALL_PARTS: readonly RoutedPart[] = ['attention', 'mlp', 'norms'];

/**
 * The decoder stack without the LM head (HF's LlamaModel, prefix `model.`): token embedding, decoder layers with
 * inserted blocks, final RMSNorm. It sets up what every layer shares per call (positions, rotary tables, attention
 * bias, token routing).
 */
export class LlamaModel extends Module {
  /** Token embedding [V, D]. */
  readonly embed_tokens: Embedding;
  /** The decoder layers. */
  readonly layers: DecoderLayer[];
  /** Final RMSNorm. */
  readonly norm: RMSNorm;
  /** The blocks inserted around layers (`model.inserted.*`). */
  readonly inserted: InsertedBlocks;
  /** The rotary embedding every layer's attention uses. */
  readonly rotary: RotaryEmbedding;
  private currentConfig: LlamaConfig;
  /** KV-cache slots: one per layer, plus one per extra tower of 'towers'-routed layers. */
  private slots: number;

  constructor(config: LlamaConfig, prefix = 'model') {
    super();
    this.currentConfig = { ...config };
    this.embed_tokens = this.addModule('embed_tokens', new Embedding(config.vocabSize, config.hiddenSize));
    this.layers = this.addModuleList(
      'layers',
      Array.from({ length: config.numLayers }, (_, i) => new DecoderLayer(config, i)),
    );
    this.norm = this.addModule('norm', new RMSNorm(config.hiddenSize, { eps: config.rmsNormEps }));
    this.inserted = this.addModule('inserted', new InsertedBlocks(`${prefix}.inserted`));
    this.rotary = new RotaryEmbedding({
      headDim: headDimOf(config),
      theta: config.ropeTheta,
      sections: config.mropeSections ?? undefined,
      scaling: config.ropeScaling ?? undefined,
    });
    this.slots = config.numLayers;
  }

  /** The current config (vocabSize follows resizes). */
  get config(): Readonly<LlamaConfig> {
    return this.currentConfig;
  }

  /** Number of KV-cache layer slots a cache for this model needs. */
  get cacheSlots(): number {
    return this.slots;
  }

  /** Updates the recorded vocabulary size (after the embedding was resized). */
  setVocabSize(vocabSize: number): void {
    this.currentConfig = { ...this.currentConfig, vocabSize };
  }

  /**
   * ids [B, T] or embeddings [B, T, D] -> hidden states [B, T, D] after the final norm (and every layer's residual
   * stream with `outputHiddenStates`). The caller owns the returned tensors.
   */
  forward(inputs: CausalLMInputs, options: { outputHiddenStates?: boolean } = {}): DecoderOutput {
    const config = this.currentConfig;
    const { inputIds, inputsEmbeds } = inputs;
    if ((inputIds === undefined) === (inputsEmbeds === undefined)) {
      throw new Error(
        `CausalLM.forward: give exactly one of inputIds (int32 [B, T]) and inputsEmbeds ([B, T, ${config.hiddenSize}]); ` +
          `got ${inputIds ? 'both' : 'neither'}`,
      );
    }
    if (inputIds && inputIds.rank !== 2) throw new Error(`CausalLM.forward: inputIds must be int32 [B, T], got [${inputIds.shape}]`);
    if (inputsEmbeds && (inputsEmbeds.rank !== 3 || inputsEmbeds.shape[2] !== config.hiddenSize || inputsEmbeds.dtype !== 'float32')) {
      throw new Error(
        `CausalLM.forward: inputsEmbeds must be float32 [B, T, ${config.hiddenSize}] (the model width), ` +
          `got ${inputsEmbeds.dtype} [${inputsEmbeds.shape}]`,
      );
    }
    const [batch, length] = (inputIds ?? inputsEmbeds)!.shape as [number, number];
    if (length === 0) throw new Error('CausalLM.forward: the input has no tokens (T = 0)');
    const cache = inputs.cache ?? null;
    if (cache) {
      cache.assertCompatible({ numKvHeads: config.numKvHeads, headDim: headDimOf(config), batch, numLayers: this.slots });
    }
    const pastLength = cache ? cache.length : 0;
    if (pastLength + length > config.maxPositionEmbeddings) {
      throw new Error(
        `CausalLM.forward: ${pastLength > 0 ? `${pastLength} cached + ` : ''}${length} tokens exceed maxPositionEmbeddings ` +
          `(${config.maxPositionEmbeddings}); shorten the input or start a new cache`,
      );
    }
    if (inputs.positions) checkPositions(inputs.positions, batch, length, this.rotary.numAxes);
    if (inputs.attentionBias) checkAttentionBias(inputs.attentionBias, batch, config.numHeads, length, pastLength + length);
    const modality = inputs.tokenModality;
    if (modality && (modality.dtype !== 'int32' || modality.rank !== 2 || modality.shape[0] !== batch || modality.shape[1] !== length)) {
      throw new Error(
        `CausalLM.forward: tokenModality must be int32 [${batch}, ${length}] (one modality per new token), ` +
          `got ${modality.dtype} [${modality.shape}]`,
      );
    }

    return tf.tidy(() => {
      const embeds = inputIds ? this.embed_tokens.forward(inputIds) : inputsEmbeds!;
      const paddingMask = inputs.paddingMask ? checkPaddingMask(inputs.paddingMask, batch, length, pastLength) : null;
      const positions = inputs.positions ?? defaultPositions(paddingMask, batch, length, pastLength);
      const bias = inputs.attentionBias ?? (paddingMask ? paddingBias(paddingMask, length, pastLength) : null);
      const maxModalities = this.maxModalities();
      const routing =
        inputs.tokenModality && maxModalities > 1
          ? TokenRouting.fromTokenModality(inputs.tokenModality, batch, length, maxModalities)
          : TokenRouting.allText(batch, length);
      const context = inputs.context ?? {};
      const run: LayerRun = { rotary: this.rotaryTables(positions, batch, length), bias, cache, routing, context };
      const blockContext = (layer: number, position: 'before' | 'after'): BlockContext => ({
        layer,
        position,
        context,
        tokenModality: inputs.tokenModality ?? null,
        positions,
        paddingMask,
        attentionBias: bias,
        cache,
        pastLength,
        training: this.training,
      });

      let x = embeds;
      const hiddenStates = options.outputHiddenStates ? [tf.clone(embeds)] : undefined;
      for (const layer of this.layers) {
        x = this.runBlocks('before', layer.index, x, blockContext);
        x = layer.forward(x, run);
        x = this.runBlocks('after', layer.index, x, blockContext);
        hiddenStates?.push(x);
      }
      const hidden = this.norm.forward(x);
      return hiddenStates ? { hidden, hiddenStates } : { hidden };
    });
  }

  /**
   * Inserts a block (or one per layer from a factory) before or after the selected layers; see {@link
   * CausalLM.insertBlock}.
   */
  insertBlock(block: InsertedBlock | ((layer: number) => InsertedBlock), options: InsertBlockOptions): InsertedBlockInfo[] {
    const position = options.position ?? 'after';
    if (position !== 'before' && position !== 'after') {
      throw new Error(`insertBlock: position must be 'before' or 'after', got '${position as string}'`);
    }
    const layers = resolveLayers(options.layer, this.layers.length, 'insertBlock');
    return layers.map((layer) => this.inserted.add(typeof block === 'function' ? block(layer) : block, layer, position, options.name));
  }

  /** Adds a LLaMA-Adapter prefix to each selected layer; see {@link CausalLM.addPrefixAdapter}. */
  addPrefixAdapter(layers: LayerSelection, options: PrefixAdapterOptions): PrefixAdapter[] {
    return resolveLayers(layers, this.layers.length, 'addPrefixAdapter').map((i) => this.layers[i]!.addPrefixAdapter(options));
  }

  /** Gives the selected layers per-modality weights; see {@link CausalLM.routeByModality}. */
  routeByModality(options: RouteByModalityOptions): ModalityExperts[] {
    const { numModalities } = options;
    const mode = options.mode ?? 'shared-attention';
    const parts = options.parts ?? ALL_PARTS;
    if (!(Number.isInteger(numModalities) && numModalities >= 2)) {
      throw new Error(`routeByModality: numModalities must be an integer >= 2 (text plus at least one other), got ${numModalities}`);
    }
    if (mode !== 'shared-attention' && mode !== 'towers') {
      throw new Error(`routeByModality: mode must be 'shared-attention' or 'towers', got '${mode as string}'`);
    }
    const unknown = parts.filter((p) => !ALL_PARTS.includes(p));
    if (parts.length === 0 || unknown.length > 0 || new Set(parts).size !== parts.length) {
      throw new Error(`routeByModality: parts must be distinct values of ${JSON.stringify(ALL_PARTS)}, got ${JSON.stringify(parts)}`);
    }
    if (mode === 'towers' && parts.length !== ALL_PARTS.length) {
      throw new Error(
        `routeByModality: 'towers' mode copies whole layers (parts ${JSON.stringify(ALL_PARTS)}), got ${JSON.stringify(parts)}; ` +
          "use mode 'shared-attention' to route only some parts",
      );
    }
    const layers = resolveLayers(options.layers ?? 'all', this.layers.length, 'routeByModality');
    const already = layers.filter((i) => this.layers[i]!.routing !== null);
    if (already.length > 0) throw new Error(`routeByModality: layers ${already.join(', ')} are already routed`);
    return layers.map((i) => {
      const cacheSlots = [i];
      if (mode === 'towers') for (let k = 1; k < numModalities; k++) cacheSlots.push(this.slots++);
      return this.layers[i]!.enableRouting({ numModalities, parts, mode, cacheSlots });
    });
  }

  /**
   * cos/sin for the layers: [B, T, R], or [T, R] for one row, which applyRotary broadcasts without the two
   * expandDims it would otherwise run in every layer (the same numbers; a decode step is bound by its op count).
   */
  private rotaryTables(positions: tf.Tensor, batch: number, length: number): RotaryTables {
    const tables = this.rotary.forward(positions);
    if (batch !== 1) return tables;
    const rotated = tables.cos.shape[2]!;
    return { cos: tf.reshape(tables.cos, [length, rotated]), sin: tf.reshape(tables.sin, [length, rotated]) };
  }

  /** The largest numModalities of any routed layer (1 when nothing is routed). */
  private maxModalities(): number {
    return Math.max(1, ...this.layers.map((l) => l.routing?.numModalities ?? 1));
  }

  private runBlocks(
    position: 'before' | 'after',
    layer: number,
    x: tf.Tensor,
    blockContext: (layer: number, position: 'before' | 'after') => BlockContext,
  ): tf.Tensor {
    for (const { block, prefix } of this.inserted.at(position, layer)) {
      const y = block.forward(x, blockContext(layer, position));
      if (!(y instanceof tf.Tensor) || y.rank !== x.rank || y.shape.some((d, i) => d !== x.shape[i])) {
        throw new Error(
          `CausalLM: the block inserted as '${prefix}' must return the hidden states' shape [${x.shape}], ` +
            `got ${y instanceof tf.Tensor ? `[${y.shape}]` : typeof y}`,
        );
      }
      x = y;
    }
    return x;
  }

  /** A cache for `batch` rows with a slot per layer (and per extra tower). */
  createCache(batch: number): KVCache {
    const config = this.currentConfig;
    return new KVCache({ numLayers: this.slots, numKvHeads: config.numKvHeads, headDim: headDimOf(config), batch });
  }
}
