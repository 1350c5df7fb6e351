/**
 * One pre-norm Llama decoder layer (Touvron et al. 2023): x + attn(rmsnorm(x)), then h + swiglu(rmsnorm(h)), with
 * HF's child names (input_layernorm, self_attn, post_attention_layernorm, mlp). Two optional extensions attach
 * here: a LLaMA-Adapter prefix (`prefix_adapter`) and per-modality copies of the routed parts (`experts.{k}`,
 * see routing.ts), both registered under their own names so the layer's own weights keep HF's names.
 */
import * as tf from '@tensorflow/tfjs';
import { Attention, GatedMLP, Module, RMSNorm, type KVCache, type RotaryTables } from '@chimera/core';
import { headDimOf, type LlamaConfig } from '../config';
import type { PrefixAdapterOptions, RoutedPart, RoutingMode } from './extension-points';
import { PrefixAdapter } from './prefix-adapter';
import { routedSelfAttention } from './routed-attention';
import { ExpertParts, ModalityExperts, type TokenRouting } from './routing';

/** What every layer of one forward call shares. */
export interface LayerRun {
  /** cos/sin tables [B, T, headDim] of this call's positions. */
  rotary: RotaryTables;
  /** Self-attention bias [B, 1, T, S], or null for the built-in causal mask. */
  bias: tf.Tensor | null;
  /** The KV cache of this call, or null. */
  cache: KVCache | null;
  /** This call's tokens grouped by modality. */
  routing: TokenRouting;
  /** The caller's opaque record, handed to prefix adapters. */
  context: Readonly<Record<string, unknown>>;
}

/** How a layer routes by modality (set by `enableRouting`). */
export interface LayerRoutingInfo {
  /** Modalities routed (tokenModality 0 .. numModalities-1). */
  numModalities: number;
  /** The parts that get per-modality weights. */
  parts: readonly RoutedPart[];
  /** Shared attention (MoT, CogVLM) or whole towers (X-Fusion). */
  mode: RoutingMode;
  /** KV-cache slot of each modality's tower ('towers' mode); [layer index] otherwise. */
  cacheSlots: readonly number[];
}

/**
 * One pre-norm Llama decoder layer, x + attn(rmsnorm(x)) then h + swiglu(rmsnorm(h)), with HF's child names. A
 * LLaMA-Adapter prefix and per-modality expert copies attach here.
 */
export class DecoderLayer extends Module {
  /** Position of the layer in the stack. */
  readonly index: number;
  /** RMSNorm before attention. */
  readonly input_layernorm: RMSNorm;
  /** Causal self-attention (GQA, RoPE). */
  readonly self_attn: Attention;
  /** RMSNorm before the feed-forward block. */
  readonly post_attention_layernorm: RMSNorm;
  /** SwiGLU feed-forward block. */
  readonly mlp: GatedMLP;
  private readonly config: LlamaConfig;
  private adapter: PrefixAdapter | null = null;
  private experts: ModalityExperts | null = null;
  private routingInfo: LayerRoutingInfo | null = null;

  constructor(config: LlamaConfig, index: number) {
    super();
    this.index = index;
    this.config = config;
    this.input_layernorm = this.addModule('input_layernorm', this.makeNorm());
    this.self_attn = this.addModule('self_attn', this.makeAttention());
    this.post_attention_layernorm = this.addModule('post_attention_layernorm', this.makeNorm());
    this.mlp = this.addModule('mlp', this.makeMLP());
  }

  /** The layer's LLaMA-Adapter prefix, or null. */
  get prefixAdapter(): PrefixAdapter | null {
    return this.adapter;
  }

  /** How the layer routes by modality, or null when it does not. */
  get routing(): LayerRoutingInfo | null {
    return this.routingInfo;
  }

  /** x [B, T, D] -> [B, T, D]. */
  forward(x: tf.Tensor, run: LayerRun): tf.Tensor {
    return tf.tidy(() => {
      const info = this.routingInfo;
      if (!info) return this.plainForward(x, run);
      run.routing.assertRoutable(info.numModalities, this.index);
      // Towers keep one cache per tower, so with a cache every tower sees every token, text-only calls included.
      if (info.mode === 'towers' && (run.cache || !run.routing.only(0))) return this.towersForward(x, run, info);
      if (run.routing.only(0)) return this.plainForward(x, run);
      return this.sharedAttentionForward(x, run, info);
    });
  }

  /** Adds a LLaMA-Adapter prefix to this layer (see prefix-adapter.ts). */
  addPrefixAdapter(options: PrefixAdapterOptions): PrefixAdapter {
    if (this.adapter) throw new Error(`DecoderLayer ${this.index}: already has a prefix adapter`);
    this.adapter = this.addModule('prefix_adapter', new PrefixAdapter(this.config.hiddenSize, this.config.numHeads, options));
    return this.adapter;
  }

  /**
   * Gives modalities 1 .. n-1 their own copies of `parts`, initialised from this layer's current weights (so
   * call it after loading a pretrained checkpoint). `cacheSlots` as in LayerRoutingInfo.
   */
  enableRouting(info: LayerRoutingInfo): ModalityExperts {
    if (this.routingInfo) throw new Error(`DecoderLayer ${this.index}: already routed by modality`);
    const copies: ExpertParts[] = [];
    for (let k = 1; k < info.numModalities; k++) {
      const parts: ConstructorParameters<typeof ExpertParts>[0] = {};
      if (info.parts.includes('norms')) {
        parts.input_layernorm = copyOf(this.input_layernorm, this.makeNorm());
        parts.post_attention_layernorm = copyOf(this.post_attention_layernorm, this.makeNorm());
      }
      if (info.parts.includes('attention')) parts.self_attn = copyOf(this.self_attn, this.makeAttention());
      if (info.parts.includes('mlp')) parts.mlp = copyOf(this.mlp, this.makeMLP());
      copies.push(new ExpertParts(parts));
    }
    this.experts = this.addModule('experts', new ModalityExperts(copies));
    this.routingInfo = { ...info, parts: [...info.parts], cacheSlots: [...info.cacheSlots] };
    return this.experts;
  }

  private plainForward(x: tf.Tensor, run: LayerRun): tf.Tensor {
    const normed = this.input_layernorm.forward(x);
    const attended = this.self_attn.forward(normed, this.attentionOptions(this.self_attn, run, this.index, x.shape[0]!));
    const h = tf.add(x, attended);
    return tf.add(h, this.mlp.forward(this.post_attention_layernorm.forward(h)));
  }

  /** MoT / visual expert: per-token weights for the routed parts, one global self-attention. */
  private sharedAttentionForward(x: tf.Tensor, run: LayerRun, info: LayerRoutingInfo): tf.Tensor {
    const { routing } = run;
    const routesNorms = info.parts.includes('norms');
    const routesMlp = info.parts.includes('mlp');
    const norm1 = (k: number) => this.part(k, 'input_layernorm');
    let attended: tf.Tensor;
    if (info.parts.includes('attention')) {
      // The prefix is projected by modality 0's k/v projections (the layer's own).
      const adapter = this.adapter ? this.adapter.attentionAdapter(this.self_attn, x.shape[0]!, run.context) : null;
      attended = routedSelfAttention(
        routing,
        (k) => this.part(k, 'self_attn'),
        routesNorms ? x : this.input_layernorm.forward(x),
        { bias: run.bias, rotary: run.rotary, cache: run.cache, slot: this.index, adapter },
        routesNorms ? (k, rows) => norm1(k).forward(rows) : null,
      );
    } else {
      const normed = routesNorms ? routing.route(x, (k, rows) => norm1(k).forward(rows)) : this.input_layernorm.forward(x);
      attended = this.self_attn.forward(normed, this.attentionOptions(this.self_attn, run, this.index, x.shape[0]!));
    }
    const h = tf.add(x, attended);
    const norm2 = (k: number) => this.part(k, 'post_attention_layernorm');
    const mlp = (k: number) => this.part(k, 'mlp');
    let ffn: tf.Tensor;
    if (routesMlp) {
      ffn = routesNorms
        ? routing.route(h, (k, rows) => mlp(k).forward(norm2(k).forward(rows)))
        : routing.route(this.post_attention_layernorm.forward(h), (k, rows) => mlp(k).forward(rows));
    } else {
      const normed = routesNorms ? routing.route(h, (k, rows) => norm2(k).forward(rows)) : this.post_attention_layernorm.forward(h);
      ffn = this.mlp.forward(normed);
    }
    return tf.add(h, ffn);
  }

  /** X-Fusion dual tower: every tower's attention over the whole sequence; each token keeps its own tower's. */
  private towersForward(x: tf.Tensor, run: LayerRun, info: LayerRoutingInfo): tf.Tensor {
    const { routing } = run;
    const towers = run.cache ? Array.from({ length: info.numModalities }, (_, k) => k) : routing.present;
    const attendedBy = new Map<number, tf.Tensor>();
    for (const k of towers) {
      const attn = this.part(k, 'self_attn');
      const normed = this.part(k, 'input_layernorm').forward(x);
      attendedBy.set(k, attn.forward(normed, this.attentionOptions(attn, run, info.cacheSlots[k]!, x.shape[0]!)));
    }
    const h = tf.add(x, routing.select((k) => attendedBy.get(k)!));
    const ffn = routing.route(h, (k, rows) => this.part(k, 'mlp').forward(this.part(k, 'post_attention_layernorm').forward(rows)));
    return tf.add(h, ffn);
  }

  private attentionOptions(attn: Attention, run: LayerRun, slot: number, batch: number) {
    return {
      bias: run.bias ?? undefined,
      rotary: run.rotary,
      cache: run.cache ?? undefined,
      layer: slot,
      adapter: this.adapter ? this.adapter.attentionAdapter(attn, batch, run.context) : undefined,
    };
  }

  /** Modality k's module for a part: the layer's own for k = 0 or an unrouted part, else expert k's copy. */
  private part<K extends 'input_layernorm' | 'self_attn' | 'post_attention_layernorm' | 'mlp'>(k: number, name: K): DecoderLayer[K] {
    if (k === 0 || !this.experts) return this[name];
    const own = this.experts.get(k)[name];
    return (own ?? this[name]) as DecoderLayer[K];
  }

  private makeNorm(): RMSNorm {
    return new RMSNorm(this.config.hiddenSize, { eps: this.config.rmsNormEps });
  }

  private makeAttention(): Attention {
    const c = this.config;
    return new Attention({
      dim: c.hiddenSize,
      numHeads: c.numHeads,
      numKvHeads: c.numKvHeads,
      headDim: headDimOf(c),
      qkvBias: c.attentionBias,
      outBias: c.attentionOutBias,
      causal: true,
      qkNorm: c.qkNorm ?? undefined,
      qkNormEps: c.rmsNormEps,
    });
  }

  private makeMLP(): GatedMLP {
    return new GatedMLP(this.config.hiddenSize, this.config.intermediateSize, { activation: 'silu', bias: this.config.mlpBias });
  }
}

/** `fresh` (trainable) with `source`'s current values; both are the same module type. */
function copyOf<M extends Module>(source: M, fresh: M): M {
  // Not strict: a LoRA adapter on the source is not copied, only the weights the fresh module has.
  fresh.loadStateDict(source.stateDict(), { strict: false });
  return fresh;
}
