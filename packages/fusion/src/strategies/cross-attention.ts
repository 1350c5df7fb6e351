/**
 * Gated cross-attention (Type A; Alayrac et al. 2022, "Flamingo"; Llama 3.2 Vision): media never enter the
 * sequence. A Perceiver resampler turns each item into a fixed number of tokens, and GATED XATTN-DENSE blocks
 * inserted into the LLM (every N layers or at chosen indices) let text attend to them, each position to the
 * latest preceding item ('latest', Flamingo) or to all preceding items ('all'). Text before any item sees
 * nothing. The gates start at zero, so at init the model is exactly the frozen LLM.
 *
 *   fusion: { image: gatedCrossAttention({ layers: { every: 4 }, resampler: { type: 'perceiver', numLatents: 64 } }) }
 *
 * In the sequence an item is a `cross` item: its placeholder id (Flamingo's `<image>` token) as a marker when
 * the model has one, else nothing (it then starts where the next token sits). Modules: `<modality>.resampler`
 * (connector) and the blocks `llm.model.inserted.{before|after}_{i}_xattn_<modality>.*`, grouped as
 * `<modality>.xattn` (extension). During generation each block keeps its media keys/values in the KV cache's
 * static slot of its layer, so they are computed once per generation.
 */
import * as tf from '@tensorflow/tfjs';
import {
  crossAttentionMask,
  gatherMediaSlots,
  requirePath,
  type ContinuousInput,
  type MediaSegment,
  type PlacedMedia,
  type SequenceLayout,
} from '@chimera/core';
import { headDimOf, resolveLayers, type LayerSelection } from '@chimera/llm';
import { GatedCrossAttentionBlock, type CrossAttentionContext } from '../blocks/gated-cross-attention';
import { itemList } from '../item-features';
import { createResampler, resampleItems, type Resampler, type ResamplerSpec } from '../resamplers/resampler';
import type { AttachContext, Contribution, ContributionInput, FusionStrategy } from './strategy';

/** Options of {@link gatedCrossAttention}. */
export interface GatedCrossAttentionFusionOptions {
  /** Layers the blocks go to (default { every: 4 }: layers 3, 7, ..., as Llama 3.2 and OpenFlamingo count). */
  layers?: LayerSelection;
  /** Before the selected LM layers (default, Flamingo) or after them. */
  position?: 'before' | 'after';
  /** Which preceding items a text position sees: the latest (default) or all. */
  mode?: 'latest' | 'all';
  /** The resampler in front (default a Perceiver with its defaults); false feeds encoder features directly. */
  resampler?: ResamplerSpec | false;
  /** Feed-forward width multiple in the blocks (default 4). */
  ffMult?: number;
  /** Block norms: 'layer' (default, Flamingo) or 'rms' (Llama 3.2). */
  norm?: 'layer' | 'rms';
  /** Zero the blocks' feed-forward where no media is visible (Llama 3.2). Default false. */
  maskFeedForward?: boolean;
}

interface Attached {
  name: string;
  placeholderId: number | undefined;
  kvDim: number;
  contextKey: string;
}

/**
 * Gated cross-attention fusion (Flamingo, Llama 3.2 Vision): a resampler in front and zero-gated cross-attention
 * blocks inserted into the LLM; an item occupies only its marker in the sequence (one position with a placeholder
 * id, none without).
 */
export class GatedCrossAttentionFusion implements FusionStrategy {
  readonly kind = 'cross-attention';
  private readonly options: GatedCrossAttentionFusionOptions;
  private attached: Attached | null = null;
  private resamplerModule: Resampler | null = null;
  private blockList: GatedCrossAttentionBlock[] = [];

  constructor(options: GatedCrossAttentionFusionOptions = {}) {
    const mode = options.mode ?? 'latest';
    if (mode !== 'latest' && mode !== 'all') throw new Error(`gated cross-attention: mode must be 'latest' or 'all', got '${mode as string}'`);
    this.options = options;
  }

  /** The resampler, or null when features go to the blocks directly (available after attach). */
  get resampler(): Resampler | null {
    this.state();
    return this.resamplerModule;
  }

  /** The inserted blocks, in layer order. */
  get blocks(): readonly GatedCrossAttentionBlock[] {
    this.state();
    return this.blockList;
  }

  attach(ctx: AttachContext): void {
    if (this.attached) throw new Error(`gated cross-attention: this strategy already serves '${this.attached.name}'; make one per modality`);
    const input = requirePath(ctx.modality, 'continuousIn') as ContinuousInput<unknown>;
    const spec = this.options.resampler ?? { type: 'perceiver' };
    if (spec !== false) {
      this.resamplerModule = ctx.addModule('resampler', createResampler(spec, input.featureDim), {
        description: 'resampler: encoder features to a fixed number of media tokens',
      });
    }
    const kvDim = this.resamplerModule?.outputDim ?? input.featureDim;
    const contextKey = `cross-attention:${ctx.modalityName}`;
    this.blockList = insertCrossAttentionBlocks(ctx, this.options, { kvDim, contextKey, what: `gatedCrossAttention('${ctx.modalityName}')` });
    this.attached = { name: ctx.modalityName, placeholderId: ctx.placeholderId, kvDim, contextKey };
  }

  /** A cross item occupies only its marker: one position with a placeholder id, none without. */
  tokensFor(): number {
    return this.state().placeholderId === undefined ? 0 : 1;
  }

  segments(): MediaSegment[] {
    const { name, placeholderId } = this.state();
    return [{ modality: name, kind: 'cross', marker: placeholderId === undefined ? [] : [placeholderId] }];
  }

  contribute({ items, layout, mode, encode }: ContributionInput): Contribution {
    const { name, kvDim, contextKey } = this.state();
    const perItem = new Map<PlacedMedia, tf.Tensor>();
    let tokensPerItem = this.resamplerModule?.numLatents ?? 1;
    if (items.length > 0) {
      const encoded = encode();
      const features: tf.Tensor[] = this.resamplerModule
        ? resampleItems(this.resamplerModule, encoded.features)
        : itemList(encoded.features);
      const counts = new Set(features.map((f) => f.shape[0]!));
      if (counts.size > 1) {
        const each = items.map((entry, i) => `${entry.where}: ${features[i]!.shape[0]}`).join('; ');
        throw new Error(
          `gated cross-attention on '${name}': the items have different feature counts (${each}); without a resampler ` +
            'every item must have the same count. Add a resampler (resampler: { type: \'perceiver\' }) or resize the inputs.',
        );
      }
      tokensPerItem = features[0]!.shape[0]!;
      items.forEach((entry, i) => perItem.set(entry.placed[0]!, features[i]!));
    }
    // A generation prompt continues past its last position: give the mask one more row, for the new tokens.
    const maskLayout = mode === 'generate' ? withNextPosition(layout) : layout;
    const mask = crossAttentionMask(maskLayout, {
      tokensPerItem,
      modality: name,
      kinds: ['cross'],
      mode: this.options.mode ?? 'latest',
    });
    const media =
      mask.selected.length > 0
        ? gatherMediaSlots(
            mask.selected.map((placed) => perItem.get(placed)!),
            mask,
          )
        : tf.zeros([layout.batchSize, mask.maxItems * tokensPerItem, kvDim]);
    const entry: CrossAttentionContext = { media, bias: mask.bias, hasMedia: mask.hasMedia };
    return { context: { [contextKey]: entry } };
  }

  private state(): Attached {
    if (!this.attached) throw new Error('gated cross-attention: the strategy is not attached to a model yet; pass it to compose({ fusion })');
    return this.attached;
  }
}

/** The options of the inserted blocks (shared by gatedCrossAttention and the tile path of nvlmHybrid). */
export type CrossAttentionBlockOptions = Pick<GatedCrossAttentionFusionOptions, 'layers' | 'position' | 'ffMult' | 'norm' | 'maskFeedForward'>;

/**
 * Inserts one zero-gated XATTN-DENSE block per selected layer (`llm.model.inserted.{before|after}_{i}_xattn_<modality>`,
 * grouped as `<modality>.xattn`), each reading `contextKey` and keeping its media keys/values in the static cache slot
 * of its layer, which it claims. Returns the blocks in layer order; `what` names the strategy in errors.
 */
export function insertCrossAttentionBlocks(
  ctx: AttachContext,
  options: CrossAttentionBlockOptions,
  { kvDim, contextKey, what }: { kvDim: number; contextKey: string; what: string },
): GatedCrossAttentionBlock[] {
  const config = ctx.backbone.config;
  const layers = resolveLayers(options.layers ?? { every: 4 }, config.numLayers, what);
  for (const layer of layers) ctx.claimStaticCacheSlot(layer, `the ${ctx.modalityName} cross-attention block at layer ${layer}`);
  const infos = ctx.insertBlocks(
    (layer) =>
      new GatedCrossAttentionBlock({
        dim: config.hiddenSize,
        kvDim,
        numHeads: config.numHeads,
        numKvHeads: config.numKvHeads,
        headDim: headDimOf(config),
        ffMult: options.ffMult,
        norm: options.norm,
        maskFeedForward: options.maskFeedForward,
        contextKey,
        cacheSlot: layer,
      }),
    { layer: layers, position: options.position ?? 'before', name: `xattn_${ctx.modalityName.replace(/-/g, '_')}` },
    { name: 'xattn', description: 'gated cross-attention blocks (tanh gates, zero at init)' },
  );
  return infos.map((info) => info.block as GatedCrossAttentionBlock);
}

/** The layout as the mask builder sees it, with one more real position per row: where generation continues. */
export function withNextPosition(layout: SequenceLayout): Pick<SequenceLayout, 'batchSize' | 'length' | 'media' | 'paddingMask'> {
  const { batchSize: B, length: T } = layout;
  const paddingMask = new Uint8Array(B * (T + 1));
  for (let b = 0; b < B; b++) {
    paddingMask.set(layout.paddingMask.subarray(b * T, (b + 1) * T), b * (T + 1));
    paddingMask[b * (T + 1) + T] = 1;
  }
  return { batchSize: B, length: T + 1, media: layout.media, paddingMask };
}

/** Gated cross-attention: a resampler in front and zero-gated XATTN-DENSE blocks in the LLM. */
export function gatedCrossAttention(options: GatedCrossAttentionFusionOptions = {}): GatedCrossAttentionFusion {
  return new GatedCrossAttentionFusion(options);
}
