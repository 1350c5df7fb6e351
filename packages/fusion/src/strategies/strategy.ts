/**
 * The FusionStrategy contract: how one modality's items reach the backbone. A strategy has three moments, so
 * every family in the literature fits the same shape (docs/fusion.md walks through each):
 *
 * 1. attach (compose time): build modules and register them (`<modality>.<role>`), change the backbone through
 *    its typed extension points (insertBlock, addPrefixAdapter, routeByModality, addHead), and declare
 *    parameter groups so freezing presets can address them.
 * 2. segments (per item, plain JS, before packing): what the item occupies in the sequence: spliced `features`
 *    (LLaVA), `cross` items seen through cross-attention (Flamingo), `codes` (Chameleon), `latents`
 *    (Transfusion), or several segments at once (NVLM-H: a spliced thumbnail and cross-attended tiles).
 * 3. contribute (per batch, inside the differentiable scope): tensors for the packed batch: features to splice
 *    into inputsEmbeds and entries of the backbone's forward `context` that inserted blocks and prefix adapters
 *    read. Optional `lossTerms` add head losses (image codes, diffusion) to the text loss.
 *
 * A strategy instance serves one modality of one composed model.
 */
import type * as tf from '@tensorflow/tfjs';
import type {
  EncodeOptions,
  EncodedFeatures,
  ItemFeatures,
  MediaSegment,
  Modality,
  Module,
  PackOptions,
  PlacedMedia,
  SequenceBatch,
  SequenceLayout,
} from '@chimera/core';
import type { CausalLM, CausalLMOutput, InsertBlockOptions, InsertedBlock, InsertedBlockInfo } from '@chimera/llm';
import type { GroupKind } from '../parameter-groups';

/** What a strategy may touch when it is attached to a composed model. */
export interface AttachContext {
  /** The modality this strategy serves: its registry name and parameter prefix (`image`). */
  readonly modalityName: string;
  /** The modality plugin. */
  readonly modality: Modality<any, any, any>;
  /** The backbone. Change it only through its extension points. */
  readonly backbone: CausalLM;
  /** The backbone's width D (what spliced features must have). */
  readonly hiddenSize: number;
  /** This modality's `tokenModality` value (1-based; 0 is text), for routing strategies. */
  readonly routingIndex: number;
  /** Text plus every composed modality: the `numModalities` a routing strategy passes to routeByModality. */
  readonly numModalities: number;
  /** The placeholder id configured for this modality, if any. */
  readonly placeholderId: number | undefined;
  /**
   * Registers a module of the strategy as `<modality>.<role>` (e.g. `image.projector`) and declares it as the
   * parameter group of that name. Kind 'connector' (default) is what the 'projector' preset trains.
   */
  addModule<M extends Module>(role: string, module: M, options?: { kind?: GroupKind; description?: string }): M;
  /**
   * Inserts a block (or one per layer from a factory) into the backbone (CausalLM.insertBlock; the parameters
   * keep the backbone's names, `llm.model.inserted.*`) and declares every inserted block as the parameter group
   * `<modality>.<group>` (kind 'extension').
   */
  insertBlocks(
    block: InsertedBlock | ((layer: number) => InsertedBlock),
    options: InsertBlockOptions,
    group: { name: string; description: string },
  ): InsertedBlockInfo[];
  /**
   * Declares a parameter group by a predicate over full parameter names (for parameters the backbone's other
   * extension points create: `llm.model.layers.3.experts.1.*`, `llm.heads.image_codes.*`). The name is
   * prefixed with the modality: `<modality>.<name>`.
   */
  declareGroup(group: { name: string; kind: GroupKind; description: string; match: (parameterName: string) => boolean }): void;
  /**
   * Reserves the static (cross-attention) slot `slot` of the backbone's KV cache, where a cross-attention block
   * keeps its media keys/values during generation. Two blocks may not share a slot.
   */
  claimStaticCacheSlot(slot: number, owner: string): void;
}

/** What `segments` learns about the composed model. */
export interface SegmentContext {
  /** The placeholder id of the strategy's modality, if configured (a marker token for cross-attention items). */
  placeholderId: number | undefined;
  /** How the caller gave the item (`sample 0, part 1`, `sample 2, media item 0`), for error messages. */
  where?: string;
}

/** One item of the strategy's modality in a batch, with the positions its segments took. */
export interface StrategyItem<Prepared = unknown> {
  /** The prepared item. */
  item: Prepared;
  /** Batch row. */
  row: number;
  /** The placed form of each segment `segments` returned for it, in the same order. */
  placed: PlacedMedia[];
  /** How the caller gave the item (`sample 0, part 1`, `sample 2, media item 0`), for error messages. */
  where: string;
}

/** What `contribute` gets for one batch: this modality's items, the layout, the mode and an encoder call. */
export interface ContributionInput<Prepared = unknown> {
  /** Every item of this modality in batch order (row by row, left to right). */
  items: readonly StrategyItem<Prepared>[];
  /** The packed layout (plain JS): positions, media locations, padding. */
  layout: SequenceLayout;
  /**
   * 'forward' for forward/loss; 'generate' for a generation prompt, which continues past the layout: a
   * strategy that masks per position (cross-attention) must also say what the generated tokens see.
   */
  mode: 'forward' | 'generate';
  /** The model's train/eval mode (a diffusion strategy samples noise levels only while training). */
  training: boolean;
  /** The backbone. */
  backbone: CausalLM;
  /**
   * Runs the modality's encoder (`continuousIn.encode`) on `items` and checks what it returns, item by item: one
   * [N, featureDim] feature run per item, with N the plugin's `tokensFor(item)`. A mismatch is an error naming the
   * item as the caller gave it. Encode through this rather than the plugin directly, so every strategy gets the checks.
   */
  encode(options?: EncodeOptions): EncodedFeatures;
}

/**
 * Tensors a strategy adds to one batch. Everything here belongs to the caller's scope (forward's tidy, or the
 * generation run, which frees it at the end). Context values must be tensors or plain objects/arrays of them.
 */
export interface Contribution {
  /** Features of this modality's `features` segments, in batch order: [N_i, D] each or [items, N, D]. */
  features?: ItemFeatures;
  /** Embedded latents of its `latents` segments (Transfusion), same layout. */
  latents?: ItemFeatures;
  /** Embedding of its `codes` segments when they are not in the text vocabulary (Janus): ids [K] -> [K, D]. */
  embedCodes?: (ids: tf.Tensor1D) => tf.Tensor;
  /** Entries of the backbone's forward context, read by inserted blocks and prefix adapters. */
  context?: Record<string, unknown>;
  /** Anything `lossTerms` needs from this batch (a diffusion strategy's noise targets); handed back unchanged. */
  lossInputs?: Record<string, unknown>;
}

/** Pack options a strategy needs (CogVLM: shared positions; Transfusion: bidirectional media). */
export type StrategyPackOptions = Partial<Pick<PackOptions, 'positions' | 'bidirectionalMedia' | 'prefixLM' | 'unifiedVocab'>>;

/** What `lossTerms` gets: the backbone's output, the packed batch and this strategy's contribution. */
export interface LossTermInput {
  /** The backbone's forward output. */
  output: CausalLMOutput;
  /** The packed batch. */
  batch: SequenceBatch;
  /** What this strategy's `contribute` returned for the same batch. */
  contribution: Contribution;
}

/**
 * How one modality joins the backbone: the segments an item becomes, the modules it adds (attach), and the tensors it
 * contributes to each batch. Implemented by {@link EarlyFusion} and {@link GatedCrossAttentionFusion}.
 */
export interface FusionStrategy<Prepared = any> {
  /** A short name of the family ('early', 'cross-attention', ...), shown in errors and summaries. */
  readonly kind: string;
  /** Pack options the strategy needs; compose merges them and rejects conflicts. */
  readonly packOptions?: StrategyPackOptions;
  /** Pass the batch's tokenModality to the backbone (routing strategies: MoT, visual expert, dual tower). */
  readonly routesByModality?: boolean;
  /** Builds and registers the strategy's modules (once). */
  attach(ctx: AttachContext): void;
  /** The sequence segments standing for one item (plain JS; may read the item, e.g. tokenize it to codes). */
  segments(item: Prepared, ctx: SegmentContext): MediaSegment[];
  /** Positions the item occupies in the sequence (the sum of its segments' tokens). */
  tokensFor(item: Prepared): number;
  /** The batch's tensors for this modality (runs the encoder, resampler, projector, ...). */
  contribute(input: ContributionInput<Prepared>): Contribution;
  /** Extra loss terms (named scalars) added to the text loss. */
  lossTerms?(input: LossTermInput): Record<string, tf.Scalar>;
  /** Frees tensors the strategy holds outside its registered modules (modules are freed by the model). */
  dispose?(): void;
}

