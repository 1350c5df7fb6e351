/**
 * ComposedModel: one Module made of a backbone LLM, modality plugins and a fusion strategy per modality (built by
 * `compose()`). It runs interleaved text-and-media samples through the strategies and the backbone.
 *
 *   model.forward(samples)                 logits [B, T, V], text targets and loss mask (model.layout(samples): where items sit)
 *   model.loss(samples)                    causal-LM loss on the trained text (plus strategy loss terms)
 *   await model.generate(prompt, { maxNewTokens: 8 })   encoders run once; media K/V cached per generation
 *   model.trainOnly('projector')           freezing presets or patterns; model.summary() says what trains
 *   await model.save(path, { trainableOnly: true }); await fresh.load(path)
 *
 * Parameter names: `llm.*` for the backbone (blocks inserted into it keep its names: `llm.model.inserted.*`),
 * `<modality>.<role>.*` for each plugin's parts (`image.encoder.*`) and each strategy's modules
 * (`image.projector.*`, `image.resampler.*`). Groups (`summary()`) name every part, e.g. `image.xattn`.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, type LoadStateDictResult, type Modality, type SequenceLayout } from '@chimera/core';
import {
  causalLMLoss,
  streamGenerate as streamBackbone,
  type CausalLM,
  type CausalLMOutput,
  type GenerateOptions,
  type GenerationResult,
  type GenerationStep,
  type TextTokenizer,
} from '@chimera/llm';
import { loadComposed, saveComposed, uniqueParameters, type LoadComposedOptions, type SaveComposedOptions } from './checkpoint';
import { resolveTrainable, type TrainableSelection } from './freezing';
import { buildInputs, layoutBatch, type ComposedPackOptions, type LaidOutBatch, type PackingContext } from './packing';
import type { ParameterGroup, ParameterGroups } from './parameter-groups';
import { isSampleList, type ComposedSample } from './samples';
import type { FusionStrategy } from './strategies/strategy';
import { summarize, type ModelSummary } from './summary';

/** What `forward` returns. The tensors belong to the caller (tf.dispose(output) frees them). */
export type ComposedOutput = {
  /** [B, T, V]. */
  logits: tf.Tensor;
  /** [B, T, D] after the final norm. */
  hidden: tf.Tensor;
  /** Outputs of heads added to the backbone, by name. */
  heads: Record<string, tf.Tensor>;
  /** int32 [B, T]: the text token position t predicts (0 where masked). */
  targets: tf.Tensor2D;
  /** float32 [B, T]: 1 where the text loss counts (trained text after a real position). */
  targetMask: tf.Tensor2D;
  /** float32 [B, T]: 1 real, 0 padding (right padding). */
  paddingMask: tf.Tensor2D;
};

/** generate / streamGenerate options: the backbone's, minus what the model derives from the prompt. */
export type ComposedGenerateOptions = Omit<GenerateOptions, 'positions' | 'attentionBias' | 'tokenModality' | 'context' | 'paddingMask'>;

/** A generation prompt's tensors, kept for the whole run. */
type PreparedPrompt = {
  inputIds: tf.Tensor | null;
  inputsEmbeds: tf.Tensor | null;
  paddingMask: tf.Tensor;
  positions: tf.Tensor | null;
  attentionBias: tf.Tensor | null;
  tokenModality: tf.Tensor | null;
  context: Record<string, unknown>;
};

/** Everything compose() hands over. */
export interface ComposedModelParts {
  /** The LLM. */
  backbone: CausalLM;
  /** Modality plugins by name, in routing order. */
  modalities: Map<string, Modality<any, any, any>>;
  /** Fusion strategy per modality name. */
  strategies: Map<string, FusionStrategy>;
  /** Placeholder id per modality that has one. */
  placeholders: Map<string, number>;
  /** The tokenizer, if any. */
  tokenizer: TextTokenizer | undefined;
  /** Merged pack options for every batch. */
  packOptions: ComposedPackOptions;
  /** The parameter groups declared so far. */
  groups: ParameterGroups;
}

/** A module holding one modality's parts by role: the plugin's (`encoder`) and the strategy's (`projector`). */
export class ModalityParts extends Module {
  /** Registers `module` under `role` (`encoder`, `projector`, ...) and returns it. */
  add<M extends Module>(role: string, module: M): M {
    return this.addModule(role, module);
  }

  /** Whether a part is registered under `role`. */
  has(role: string): boolean {
    return this.children().some(([name]) => name === role);
  }
}

/**
 * A backbone LLM, modality plugins and their fusion strategies as one Module (built by {@link compose}): `forward`,
 * `loss`, `generate`, freezing by group (`trainOnly`), `summary` and checkpoints. Parameters sit under `llm.*` and
 * `<modality>.<role>.*`.
 */
export class ComposedModel extends Module {
  /** The backbone (extended in place by the strategies). */
  readonly llm: CausalLM;
  /** The tokenizer given to compose, if any. */
  readonly tokenizer: TextTokenizer | undefined;
  /** Modality plugins in routing order (tokenModality k is the k-th). */
  readonly modalities: ReadonlyMap<string, Modality<any, any, any>>;
  /** Fusion strategy per modality name. */
  readonly strategies: ReadonlyMap<string, FusionStrategy>;
  /** Placeholder id of each modality that has one. */
  readonly placeholders: ReadonlyMap<string, number>;
  private readonly parts = new Map<string, ModalityParts>();
  private readonly groups: ParameterGroups;
  private readonly packing: PackingContext;

  /** Use compose(); this constructor only registers the parts. */
  constructor(parts: ComposedModelParts) {
    super();
    this.llm = this.addModule('llm', parts.backbone);
    this.tokenizer = parts.tokenizer;
    this.modalities = parts.modalities;
    this.strategies = parts.strategies;
    this.placeholders = parts.placeholders;
    this.groups = parts.groups;
    for (const name of parts.modalities.keys()) this.parts.set(name, this.addModule(name, new ModalityParts()));
    this.packing = {
      backbone: parts.backbone,
      modalities: parts.modalities,
      strategies: parts.strategies,
      placeholders: parts.placeholders,
      tokenizer: parts.tokenizer,
      get vocabSize() {
        return parts.backbone.config.vocabSize;
      },
      modalityNames: [...parts.modalities.keys()],
      packOptions: parts.packOptions,
      routesByModality: [...parts.strategies.values()].some((s) => s.routesByModality === true),
    };
  }

  /** The container of one modality's parts (`image` -> `image.encoder`, `image.projector`, ...). */
  modalityParts(name: string): ModalityParts {
    const parts = this.parts.get(name);
    if (!parts) throw new Error(`ComposedModel: no modality '${name}' (modalities: ${[...this.parts.keys()].join(', ')})`);
    return parts;
  }

  /** Positions an item of `modality` occupies in the sequence under its strategy. */
  tokensFor(modality: string, item: unknown): number {
    return this.strategyOf(modality).tokensFor(item);
  }

  /** `modality.prepare(raw)`. */
  prepare(modality: string, raw: unknown): unknown {
    this.strategyOf(modality);
    return this.modalities.get(modality)!.prepare(raw);
  }

  /** Runs a batch of samples (right-padded) through the strategies and the backbone. */
  forward(samples: readonly ComposedSample[], options: { heads?: boolean | readonly string[] } = {}): ComposedOutput {
    const laid = this.laidOut(samples, 'forward');
    return tf.tidy(() => {
      const { batch, inputs } = buildInputs(laid, this.packing);
      const output = this.llm.forward(inputs, { heads: options.heads ?? true });
      return {
        logits: output.logits,
        hidden: output.hidden,
        heads: output.heads,
        targets: batch.targets.text.ids,
        targetMask: batch.targets.text.mask,
        paddingMask: batch.paddingMask,
      };
    });
  }

  /**
   * The packed layout of samples (plain JS, no tensors) exactly as forward (or, with `generation`, generate) packs
   * them: ids, positions, where every media item sits, media locations, loss targets.
   */
  layout(samples: readonly ComposedSample[], options: { generation?: boolean } = {}): SequenceLayout {
    return this.laidOut(samples, options.generation ? 'generate' : 'forward').layout;
  }

  /**
   * The training loss of a batch: mean cross-entropy of the trained text tokens (prompts marked
   * `trained: false` and media do not count), plus every strategy's loss terms. Use inside tf.variableGrads or
   * core's Trainer: `loss: (model, batch) => model.loss(batch)`.
   */
  loss(samples: readonly ComposedSample[]): tf.Scalar {
    return tf.tidy(() => this.lossTerms(samples).total);
  }

  /** The loss and its parts: `text` and each strategy term (named `<modality>.<term>`). */
  lossTerms(samples: readonly ComposedSample[]): { total: tf.Scalar; text: tf.Scalar; terms: Record<string, tf.Scalar> } {
    const laid = this.laidOut(samples, 'forward');
    return tf.tidy(() => {
      const { batch, inputs, contributions } = buildInputs(laid, this.packing);
      const output: CausalLMOutput = this.llm.forward(inputs);
      const text = causalLMLoss(output.logits, batch.targets.text.ids, batch.targets.text.mask);
      const terms: Record<string, tf.Scalar> = {};
      for (const [name, strategy] of this.strategies) {
        const contribution = contributions.get(name)!;
        for (const [term, value] of Object.entries(strategy.lossTerms?.({ output, batch, contribution }) ?? {})) terms[`${name}.${term}`] = value;
      }
      const total = Object.values(terms).reduce<tf.Scalar>((sum, t) => tf.add(sum, t), text);
      return { total, text, terms };
    });
  }

  /**
   * Generates a continuation of one prompt or a batch of prompts (left-padded). Encoders, resamplers and
   * projectors run once on the prompt's media; cross-attention keys/values are computed on the first step and
   * reused from the KV cache. Returns the backbone's GenerationResult (text too, with a tokenizer).
   */
  async generate(prompts: ComposedSample | readonly ComposedSample[], options: ComposedGenerateOptions): Promise<GenerationResult> {
    const stream = this.streamGenerate(prompts, options);
    for (;;) {
      const next = await stream.next();
      if (next.done) return next.value;
    }
  }

  /**
   * Streams generation step by step. The prompt is checked at once; its tensors are made when the stream starts
   * and freed when it ends, throws, or is left early (break / return()).
   */
  streamGenerate(
    prompts: ComposedSample | readonly ComposedSample[],
    options: ComposedGenerateOptions,
  ): AsyncGenerator<GenerationStep, GenerationResult, undefined> {
    const samples = isSampleList(prompts) ? prompts : [prompts as ComposedSample];
    const laid = this.laidOut(samples, 'generate');
    return this.runGeneration(laid, options);
  }

  private async *runGeneration(laid: LaidOutBatch, options: ComposedGenerateOptions): AsyncGenerator<GenerationStep, GenerationResult, undefined> {
    const prepared = tf.tidy((): tf.TensorContainer => {
      const { inputs } = buildInputs(laid, this.packing);
      return {
        inputIds: inputs.inputIds ?? null,
        inputsEmbeds: inputs.inputsEmbeds ?? null,
        paddingMask: inputs.paddingMask!,
        positions: inputs.positions ?? null,
        attentionBias: inputs.attentionBias ?? null,
        tokenModality: inputs.tokenModality ?? null,
        context: (inputs.context ?? {}) as tf.TensorContainer,
      } as unknown as tf.TensorContainer;
    }) as unknown as PreparedPrompt;
    try {
      const prompt = prepared.inputsEmbeds ? { inputsEmbeds: prepared.inputsEmbeds, paddingMask: prepared.paddingMask } : prepared.inputIds!;
      const stream = streamBackbone(this.llm, prompt, {
        ...options,
        ...(prepared.inputsEmbeds ? {} : { paddingMask: prepared.paddingMask }),
        ...(prepared.positions ? { positions: prepared.positions } : {}),
        ...(prepared.attentionBias ? { attentionBias: prepared.attentionBias } : {}),
        ...(prepared.tokenModality ? { tokenModality: prepared.tokenModality } : {}),
        context: prepared.context,
        tokenizer: options.tokenizer ?? this.tokenizer,
      });
      return yield* stream;
    } finally {
      tf.dispose(prepared as unknown as tf.TensorContainer);
    }
  }

  /**
   * The freezing policy: trains exactly the selection and freezes everything else. A selection is a preset
   * ('projector', 'projector+llm', 'fusion', 'llm', 'all', 'none', 'janus-stage1..3'), a list of group names or
   * parameter patterns, or { train, freeze }. (Named trainOnly because core's Module keeps setTrainable private.) Returns the summary. Build the optimizer (or Trainer) after this call: it takes the trainable
   * parameters at construction.
   */
  trainOnly(selection: TrainableSelection): ModelSummary {
    const groups = this.parameterGroups();
    const trainable = resolveTrainable(selection, groups);
    for (const [name, v] of uniqueParameters(this)) v.trainable = trainable.has(name);
    return this.summary();
  }

  /** Every parameter group with its parameter names (see parameter-groups.ts for the kinds). */
  parameterGroups(): ParameterGroup[] {
    return this.groups.assign(uniqueParameters(this));
  }

  /** Every group with its size and trainable state; `summary().table` (or String(summary)) is a printable table. */
  summary(): ModelSummary {
    const params = uniqueParameters(this);
    return summarize(this.groups.assign(params), new Map(params));
  }

  /** Saves all parameters, or only the trainable ones (with `trainableOnly`), with core's saveCheckpoint. */
  save(path: string, options: SaveComposedOptions = {}): Promise<string[]> {
    return saveComposed(this, path, options);
  }

  /**
   * Loads a checkpoint. A trainable-only one loads on top of the current (e.g. freshly built, pretrained) frozen
   * parts and restores which parameters were trainable; a full one loads strictly.
   */
  load(path: string, options: LoadComposedOptions = {}): Promise<LoadStateDictResult> {
    return loadComposed(this, path, options);
  }

  /** Frees every parameter (backbone, plugins' modules, strategies' modules) and strategy-held tensors. */
  override dispose(): void {
    for (const strategy of this.strategies.values()) strategy.dispose?.();
    super.dispose();
  }

  private laidOut(samples: readonly ComposedSample[], mode: 'forward' | 'generate'): LaidOutBatch {
    // Every entry point lays samples out first: a disposed model fails here, not with a TypeError inside an op.
    const params = this.namedParameters();
    if (params.length === 0 || params.some(([, v]) => v.isDisposed)) {
      throw new Error(
        'this composed model has been disposed (model.dispose() freed its weights), so it cannot run; build a new one ' +
          'with compose() (and load its checkpoint) and use that one',
      );
    }
    return layoutBatch(samples, this.packing, mode);
  }

  private strategyOf(modality: string): FusionStrategy {
    const strategy = this.strategies.get(modality);
    if (!strategy) {
      throw new Error(
        `this model has no '${modality}' modality (it has: ${[...this.strategies.keys()].join(', ') || 'none'}); ` +
          `compose it with a '${modality}' plugin and a fusion strategy`,
      );
    }
    return strategy;
  }
}
