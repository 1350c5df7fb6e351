/**
 * CausalLM: the Llama-family decoder-only language model (Llama, SmolLM, Qwen2, Qwen3) with the extension points
 * fusion strategies attach to. State-dict names equal HF's (`model.embed_tokens.weight`,
 * `model.layers.{i}.self_attn.q_proj.weight`, ..., `model.norm.weight`, `lm_head.weight` unless tied). Linear
 * weights (q/k/v/o, gate/up/down, lm_head) are Chimera's [in, out] layout, so checkpoint code transposes HF's
 * [out, in]; embed_tokens is [V, D] as in HF; norms and biases are 1-D.
 *
 *   const model = new CausalLM(tinyLlama());
 *   const { logits, hidden, heads } = model.forward({ inputIds });            // logits [B, T, V]
 *   const cache = model.createCache(batch);                                    // prefill, then one token at a time
 *   model.forward({ inputIds: prompt, paddingMask, cache }, { lastLogitsOnly: true });
 *
 * Inputs (see inputs.ts): inputIds or inputsEmbeds, positions ([B, T] or [3, B, T] for M-RoPE), paddingMask
 * [B, cached + T], attentionBias [B, 1, T, S], tokenModality [B, T], cache, context. Output tensors belong to the
 * caller; the cache keeps its own.
 *
 * Extension points (all exactly neutral when unused or at their zero initialisation):
 *   insertBlock(block, { layer: i | [i, j] | { every: N }, position })   blocks around layers: model.inserted.*
 *   addPrefixAdapter(layers, { length })                                  LLaMA-Adapter: model.layers.{i}.prefix_adapter.*
 *   routeByModality({ numModalities, parts, mode })                      MoT / visual expert / dual tower:
 *                                                                         model.layers.{i}.experts.{k}.*
 *   addHead(name, head)                                                   output.heads[name]: heads.{name}.*
 *   freezeBackbone()                                                      train only the extensions (one call)
 * A plain text checkpoint loads into an extended model with loadStateDict(state, { strict: false }) (or filter the
 * model's keys with isExtensionParameter); call routeByModality after loading so experts copy the loaded weights.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, type KVCache, type EmbeddingResizeOptions } from '@chimera/core';
import { validateConfig, type LlamaConfig } from '../config';
import { LlamaModel } from './decoder';
import type { DecoderLayer } from './decoder-layer';
import {
  isExtensionParameter,
  type InsertBlockOptions,
  type InsertedBlock,
  type InsertedBlockInfo,
  type LayerSelection,
  type OutputHead,
  type PrefixAdapterOptions,
  type RouteByModalityOptions,
} from './extension-points';
import type { CausalLMInputs } from './inputs';
import { LMHead } from './lm-head';
import type { PrefixAdapter } from './prefix-adapter';
import type { ModalityExperts } from './routing';

/** Options of {@link CausalLM.forward}. */
export interface CausalLMForwardOptions {
  /** Logits of the last position only ([B, 1, V]): what generation needs. Default false. */
  lastLogitsOnly?: boolean;
  /** Also return every layer's residual stream (see DecoderOutput.hiddenStates). Default false. */
  outputHiddenStates?: boolean;
  /** Which extra heads to run: all (true, the default), none (false) or the named ones. */
  heads?: boolean | readonly string[];
}

/** A type alias (not an interface) so tf.tidy can return it. */
export type CausalLMOutput = {
  /** [B, T, V], or [B, 1, V] with lastLogitsOnly. */
  logits: tf.Tensor;
  /** [B, T, D] after the final norm (what the LM head and the extra heads read). */
  hidden: tf.Tensor;
  /** Outputs of the heads added with addHead, by name. */
  heads: Record<string, tf.Tensor>;
  /** With outputHiddenStates: numLayers + 1 tensors [B, T, D] (embeddings, then after each layer, before the final norm). */
  hiddenStates?: tf.Tensor[];
};

/** The container of extra heads (`heads.{name}`). */
class OutputHeads extends Module {
  private readonly byName = new Map<string, OutputHead>();

  add(name: string, head: OutputHead): void {
    if (!/^[A-Za-z0-9_]+$/.test(name)) {
      throw new Error(`addHead: name must be letters, digits or '_' (it becomes part of parameter names), got '${name}'`);
    }
    if (this.byName.has(name)) throw new Error(`addHead: a head named '${name}' already exists`);
    if (!(head instanceof Module) || typeof (head as { forward?: unknown }).forward !== 'function') {
      throw new Error(`addHead: head '${name}' must be a Module with forward(hidden) -> Tensor`);
    }
    this.addModule(name, head);
    this.byName.set(name, head);
  }

  entries(): [string, OutputHead][] {
    return [...this.byName.entries()];
  }
}

/**
 * The Llama-family decoder-only language model (Llama, SmolLM, Qwen2, Qwen3) with the extension points fusion
 * strategies attach to. State-dict names equal HF's (`model.layers.{i}.self_attn.q_proj.weight`, ...), with Linear
 * weights in Chimera's [in, out] layout. Dispose it (`dispose()`) to free its weights.
 */
export class CausalLM extends Module {
  /** The decoder stack (HF's `model.`): embeddings, layers, final norm. */
  readonly model: LlamaModel;
  private lmHead: LMHead | null;
  private readonly extraHeads: OutputHeads;

  constructor(config: LlamaConfig) {
    super();
    validateConfig(config);
    this.model = this.addModule('model', new LlamaModel(config));
    this.lmHead = config.tieWordEmbeddings ? null : this.addModule('lm_head', new LMHead(config.hiddenSize, config.vocabSize));
    this.extraHeads = this.addModule('heads', new OutputHeads());
  }

  /** The current config (vocabSize follows resizeTokenEmbeddings). */
  get config(): Readonly<LlamaConfig> {
    return this.model.config;
  }

  /** The untied LM head, or null when tied to the embedding. */
  get lm_head(): LMHead | null {
    return this.lmHead;
  }

  /** The decoder layers, in order. */
  get layers(): readonly DecoderLayer[] {
    return this.model.layers;
  }

  /**
   * Runs the model: ids [B, T] (or embeddings [B, T, D]) -> logits [B, T, V] ([B, 1, V] with `lastLogitsOnly`), the
   * final hidden states [B, T, D] and the extra heads' outputs. The caller owns (and disposes) every returned tensor;
   * with a cache, this call's tokens are appended to it.
   */
  forward(inputs: CausalLMInputs, options: CausalLMForwardOptions = {}): CausalLMOutput {
    const wanted = options.heads ?? true;
    const heads = this.extraHeads.entries().filter(([name]) => (Array.isArray(wanted) ? wanted.includes(name) : wanted === true));
    if (Array.isArray(wanted)) {
      const missing = wanted.filter((name) => !heads.some(([n]) => n === name));
      if (missing.length > 0) throw new Error(`CausalLM.forward: no head named ${missing.join(', ')} (added: ${this.headNames().join(', ') || 'none'})`);
    }
    return tf.tidy(() => {
      const { hidden, hiddenStates } = this.model.forward(inputs, { outputHiddenStates: options.outputHiddenStates });
      const [batch, length, dim] = hidden.shape as [number, number, number];
      const read = options.lastLogitsOnly ? tf.slice(hidden, [0, length - 1, 0], [batch, 1, dim]) : hidden;
      const logits = this.lmHead ? this.lmHead.forward(read) : this.model.embed_tokens.attend(read);
      const headOutputs: Record<string, tf.Tensor> = {};
      for (const [name, head] of heads) headOutputs[name] = head.forward(hidden);
      const output: CausalLMOutput = { logits, hidden, heads: headOutputs };
      if (hiddenStates) output.hiddenStates = hiddenStates;
      return output;
    });
  }

  /** A KV cache for `batch` rows, shaped for this model (routing towers included). Dispose it when done. */
  createCache(batch: number): KVCache {
    return this.model.createCache(batch);
  }

  /**
   * Inserts a block (or one per layer from a factory) before or after the selected layers; it becomes
   * `model.inserted.{position}_{layer}[_{name}]`. The same instance at several layers shares its weights.
   */
  insertBlock(block: InsertedBlock | ((layer: number) => InsertedBlock), options: InsertBlockOptions): InsertedBlockInfo[] {
    return this.model.insertBlock(block, options);
  }

  /** Adds a LLaMA-Adapter prefix (zero-gated) to each selected layer, e.g. `addPrefixAdapter({ last: 8 }, { length: 10 })`. */
  addPrefixAdapter(layers: LayerSelection, options: PrefixAdapterOptions): PrefixAdapter[] {
    return this.model.addPrefixAdapter(layers, options);
  }

  /**
   * Gives modalities 1 .. n-1 their own copies of the selected layers' attention / FFN / norms, initialised from
   * the current weights (modality 0 keeps the original names). Tokens choose by `tokenModality`. Caches made
   * before a 'towers' routing no longer fit (towers keep their own keys and values): create a new one.
   */
  routeByModality(options: RouteByModalityOptions): ModalityExperts[] {
    return this.model.routeByModality(options);
  }

  /** Adds an output head run on the final hidden states; its output is `output.heads[name]`. */
  addHead<H extends OutputHead>(name: string, head: H): H {
    this.extraHeads.add(name, head);
    return head;
  }

  /** Names of the heads added with {@link CausalLM.addHead}, in order. */
  headNames(): string[] {
    return this.extraHeads.entries().map(([name]) => name);
  }

  /** Freezes every plain-LLM parameter and leaves the extensions' trainable; returns the number frozen. */
  freezeBackbone(): number {
    return this.freeze((name) => !isExtensionParameter(name));
  }

  /** Names of the parameters added by extension points. */
  extensionParameterNames(): string[] {
    return this.namedParameters()
      .map(([name]) => name)
      .filter(isExtensionParameter);
  }

  /**
   * Resizes embed_tokens (and lm_head when untied) to `newVocab` rows: existing rows are kept, new ones start at
   * the mean row plus small noise (tied stays tied). Updates config.vocabSize. Rebuild optimizers afterwards.
   */
  resizeTokenEmbeddings(newVocab: number, options: EmbeddingResizeOptions = {}): void {
    const next = { ...this.config, vocabSize: newVocab };
    validateConfig(next); // e.g. shrinking below a special token id
    this.model.embed_tokens.resize(newVocab, options);
    this.lmHead?.resize(newVocab, options.noiseScale);
    this.model.setVocabSize(newVocab);
  }
}
