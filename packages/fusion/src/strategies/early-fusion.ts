/**
 * Early fusion (Type C): encoder features, optionally resampled to a fixed token count, are projected to the LLM
 * width and spliced into the input embeddings at the item's placeholder positions (LLaVA, Liu et al. 2023; with
 * a resampler, the BLIP-2 / Qwen-VL shape). Any number of items may sit anywhere in an interleaved sequence.
 *
 *   fusion: { image: earlyFusion({ projector: 'mlp2x_gelu' }) }                         // LLaVA-1.5
 *   fusion: { image: earlyFusion({ resampler: { type: 'qformer', numQueries: 32 } }) }   // BLIP-2-style
 *
 * Modules: `<modality>.resampler` (when configured) and `<modality>.projector`, both of kind 'connector'.
 * An item occupies `modality.tokensFor(item)` positions, or the resampler's numLatents with a resampler.
 */
import * as tf from '@tensorflow/tfjs';
import { requirePath, type ContinuousInput, type MediaSegment, type Modality } from '@chimera/core';
import { createProjector, type Projector, type ProjectorSpec } from '../projectors/projector';
import { itemList } from '../item-features';
import { createResampler, resampleItems, type Resampler, type ResamplerSpec } from '../resamplers/resampler';
import type { AttachContext, Contribution, ContributionInput, FusionStrategy } from './strategy';

/** Options of {@link earlyFusion}. */
export interface EarlyFusionOptions {
  /** 'linear', 'mlp2x_gelu' (default, LLaVA-1.5), 'mlp{N}x_gelu', or a factory. */
  projector?: ProjectorSpec;
  /** A resampler between encoder and projector (none by default). */
  resampler?: ResamplerSpec;
}

/**
 * Early fusion (LLaVA): encoder features, optionally resampled, are projected to the LLM width and spliced at the
 * placeholder positions.
 */
export class EarlyFusion implements FusionStrategy {
  readonly kind = 'early';
  private readonly options: EarlyFusionOptions;
  private attached: { name: string; modality: Modality<any, any, any> } | null = null;
  private projectorModule: Projector | null = null;
  private resamplerModule: Resampler | null = null;

  constructor(options: EarlyFusionOptions = {}) {
    this.options = options;
  }

  /** The projector; throws until compose() has attached the strategy. */
  get projector(): Projector {
    return this.state().projector;
  }

  /** The resampler, or null without one; throws until compose() has attached the strategy. */
  get resampler(): Resampler | null {
    this.state();
    return this.resamplerModule;
  }

  attach(ctx: AttachContext): void {
    if (this.attached) throw new Error(`early fusion: this strategy already serves '${this.attached.name}'; make one per modality`);
    const input = requirePath(ctx.modality, 'continuousIn') as ContinuousInput<unknown>;
    let width = input.featureDim;
    if (this.options.resampler !== undefined) {
      this.resamplerModule = ctx.addModule('resampler', createResampler(this.options.resampler, width), {
        description: 'resampler: encoder features to a fixed number of tokens',
      });
      width = this.resamplerModule.outputDim;
    }
    this.projectorModule = ctx.addModule('projector', createProjector(this.options.projector ?? 'mlp2x_gelu', width, ctx.hiddenSize), {
      description: 'projector: features to the LLM width',
    });
    this.attached = { name: ctx.modalityName, modality: ctx.modality };
  }

  tokensFor(item: unknown): number {
    const { modality } = this.state();
    return this.resamplerModule ? this.resamplerModule.numLatents : modality.tokensFor(item, 'continuousIn');
  }

  segments(item: unknown): MediaSegment[] {
    const { name, modality } = this.state();
    // A resampler's latents have no spatial grid; the encoder's grid only holds without one.
    const grid = this.resamplerModule ? undefined : modality.gridFor?.(item, 'continuousIn');
    return [{ modality: name, kind: 'features', tokens: this.tokensFor(item), ...(grid ? { grid } : {}) }];
  }

  contribute({ items, encode }: ContributionInput): Contribution {
    const { projector } = this.state();
    if (items.length === 0) return {};
    const encoded = encode();
    const perItem: tf.Tensor[] = this.resamplerModule
      ? resampleItems(this.resamplerModule, encoded.features)
      : itemList(encoded.features);
    // One projection over every item's rows, then sliced back per item (the splice checks each count). Slices,
    // not tf.split: tfjs's SplitV gradient fails for a one-way split.
    const projected = projector.forward(perItem.length === 1 ? perItem[0]! : tf.concat(perItem, 0));
    let start = 0;
    const features = perItem.map((f) => {
      const rows = f.shape[0]!;
      const slice = tf.slice(projected, [start, 0], [rows, -1]);
      start += rows;
      return slice;
    });
    return { features };
  }

  private state() {
    if (!this.attached || !this.projectorModule) {
      throw new Error('early fusion: the strategy is not attached to a model yet; pass it to compose({ fusion })');
    }
    return { ...this.attached, projector: this.projectorModule };
  }
}

/** Early fusion: project (and optionally resample) features and splice them at the placeholders. */
export function earlyFusion(options: EarlyFusionOptions = {}): EarlyFusion {
  return new EarlyFusion(options);
}
