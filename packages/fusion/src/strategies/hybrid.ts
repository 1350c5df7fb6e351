/**
 * NVLM-H, the hybrid of NVLM (Dai et al. 2024, "NVLM: Open Frontier-Class Multimodal LLMs"): one image goes down two
 * paths at once. Its thumbnail (the global view) is projected and spliced into the sequence, as in LLaVA / NVLM-D,
 * so the LLM's self-attention reasons over it; its high-resolution tiles never enter the sequence and are seen only
 * through zero-gated cross-attention blocks, as in Flamingo / NVLM-X, which keeps the sequence short however many
 * tiles there are.
 *
 *   fusion: { image: nvlmHybrid({ layers: { every: 4 }, tileTags: tileTagIds, maxTiles: 6 }) }
 *
 * The plugin runs in 'tiles' mode (`visionModality({ mode: 'tiles' })`): one encoder call gives every view of an
 * item, tiles and thumbnail, and this strategy splits the rows. An item becomes, in order:
 *   1. a `features` segment: the thumbnail's tokens, through `<modality>.projector` (connector);
 *   2. one `cross` segment per tile, behind its 1-D text tile tag `<tile_i>` (NVLM's tile tagging) when `tileTags`
 *      gives their ids, else behind nothing. Tiles go through `<modality>.resampler` when one is configured
 *      (default none: NVLM-X/H feed tile tokens as they are) to the blocks `<modality>.xattn` (extension).
 * A tag's position attends only to its own tile, and text to all tiles of the latest image (hybrid-mask.ts), so
 * the tag carries its tile's content to a known place in the sequence. That is how the paper tags tiles whose
 * tokens are not in the decoder, and it needs no new parameters: a learned tile embedding added to the keys would
 * also work, but would leave the sequence without an anchor for "tile i" that text can refer to.
 *
 * The gates start at zero, so at init the model is exactly thumbnail-only early fusion (tags are plain text then).
 * During generation each block keeps its tile keys/values in the KV cache's static slot of its layer.
 */
import * as tf from '@tensorflow/tfjs';
import { gatherMediaSlots, requirePath, type ContinuousInput, type MediaGrid, type MediaSegment, type Modality, type PlacedMedia } from '@chimera/core';
import type { LayerSelection } from '@chimera/llm';
import type { GatedCrossAttentionBlock, CrossAttentionContext } from '../blocks/gated-cross-attention';
import { itemList } from '../item-features';
import { createProjector, type Projector, type ProjectorSpec } from '../projectors/projector';
import { createResampler, resampleItems, type Resampler, type ResamplerSpec } from '../resamplers/resampler';
import { insertCrossAttentionBlocks, withNextPosition } from './cross-attention';
import { tileCrossAttentionMask } from './hybrid-mask';
import type { AttachContext, Contribution, ContributionInput, FusionStrategy, SegmentContext } from './strategy';

/** Where an item's thumbnail sits among its views (tiles are the other views, in order). */
export interface ItemViews {
  /** Encoder inputs of the item: tiles plus the thumbnail. */
  views: number;
  /** Index of the thumbnail among the views. */
  thumbnailIndex: number;
}

/** Options of {@link nvlmHybrid}. */
export interface NvlmHybridOptions {
  /** Thumbnail path: 'linear', 'mlp2x_gelu' (default, as NVLM's MLP), 'mlp{N}x_gelu', or a factory. */
  projector?: ProjectorSpec;
  /** Tile path: the layers the cross-attention blocks go to (default { every: 4 }). */
  layers?: LayerSelection;
  /** Before the selected LM layers (default) or after them. */
  position?: 'before' | 'after';
  /** What text sees: every tile of the latest image (default) or of every preceding image. */
  mode?: 'latest' | 'all';
  /** Tile path: a resampler applied to each tile (default false: tile tokens reach the blocks as they are). */
  resampler?: ResamplerSpec | false;
  /** Feed-forward width multiple in the blocks (default 4). */
  ffMult?: number;
  /** Block norms: 'layer' (default) or 'rms'. */
  norm?: 'layer' | 'rms';
  /** Zero the blocks' feed-forward where no tile is visible. Default false. */
  maskFeedForward?: boolean;
  /**
   * Token ids of the tile tags `<tile_1>`, `<tile_2>`, ... (add them with addTokensToModel), one per tile up to
   * maxTiles; false or omitted: no tags (text still sees the tiles, but cannot tell them apart by place).
   */
  tileTags?: readonly number[] | false;
  /** The tile budget: the most tiles an image may have (default: the number of tile tags, else 6). */
  maxTiles?: number;
  /**
   * Where the thumbnail is among an item's views. Default: the vision plugin's PreparedImage fields `views` and
   * `thumbnailIndex` ('tiles' mode).
   */
  views?: (item: unknown) => ItemViews;
}

interface Attached {
  name: string;
  modality: Modality<any, any, any>;
  contextKey: string;
  kvDim: number;
  projector: Projector;
}

/** How one item splits: its views, the thumbnail's index, the tile count and the tokens of one view. */
interface ItemGeometry extends ItemViews {
  tiles: number;
  tokensPerView: number;
}

const DEFAULT_MAX_TILES = 6;

/**
 * NVLM-H's hybrid fusion: the thumbnail of each image is projected and spliced into the sequence (early fusion), its
 * tiles are seen through zero-gated cross-attention blocks, behind optional 1-D tile tags.
 */
export class NvlmHybridFusion implements FusionStrategy {
  readonly kind = 'nvlm-hybrid';
  /** The tile budget: the most tiles an image may have. */
  readonly maxTiles: number;
  /** The tile tags' token ids, or null without tags. */
  readonly tileTags: readonly number[] | null;
  private readonly options: NvlmHybridOptions;
  private attached: Attached | null = null;
  private resamplerModule: Resampler | null = null;
  private blockList: GatedCrossAttentionBlock[] = [];

  constructor(options: NvlmHybridOptions = {}) {
    const mode = options.mode ?? 'latest';
    if (mode !== 'latest' && mode !== 'all') throw new Error(`nvlmHybrid: mode must be 'latest' or 'all', got '${mode as string}'`);
    const tags = options.tileTags === undefined || options.tileTags === false ? null : [...options.tileTags];
    if (tags !== null) {
      if (tags.length === 0 || tags.some((id) => !Number.isInteger(id) || id < 0)) {
        throw new Error(`nvlmHybrid: tileTags must be token ids (integers >= 0) of <tile_1>, <tile_2>, ..., got [${tags.join(', ')}]; or pass false for no tags`);
      }
      if (new Set(tags).size !== tags.length) throw new Error(`nvlmHybrid: tileTags repeats an id ([${tags.join(', ')}]); each tile needs its own tag`);
    }
    const maxTiles = options.maxTiles ?? tags?.length ?? DEFAULT_MAX_TILES;
    if (!Number.isInteger(maxTiles) || maxTiles < 1) throw new Error(`nvlmHybrid: maxTiles must be an integer >= 1, got ${maxTiles}`);
    if (tags !== null && tags.length < maxTiles) {
      throw new Error(
        `nvlmHybrid: maxTiles is ${maxTiles} but tileTags gives only ${tags.length} tag id(s); give one tag per tile up to ` +
          `maxTiles (<tile_1> ... <tile_${maxTiles}>) or lower maxTiles to ${tags.length}`,
      );
    }
    this.options = options;
    this.maxTiles = maxTiles;
    this.tileTags = tags;
  }

  /** The thumbnail projector (available after attach). */
  get projector(): Projector {
    return this.state().projector;
  }

  /** The tile resampler, or null when tile tokens go to the blocks directly (available after attach). */
  get resampler(): Resampler | null {
    this.state();
    return this.resamplerModule;
  }

  /** The inserted cross-attention blocks, in layer order. */
  get blocks(): readonly GatedCrossAttentionBlock[] {
    this.state();
    return this.blockList;
  }

  attach(ctx: AttachContext): void {
    if (this.attached) throw new Error(`nvlmHybrid: this strategy already serves '${this.attached.name}'; make one per modality`);
    const name = ctx.modalityName;
    const input = requirePath(ctx.modality, 'continuousIn') as ContinuousInput<unknown>;
    const vocab = ctx.backbone.config.vocabSize;
    for (const id of this.tileTags ?? []) {
      if (id >= vocab) throw new Error(`nvlmHybrid('${name}'): tile tag id ${id} is outside the LLM's vocabulary [0, ${vocab}); add the tags with addTokensToModel first`);
      if (id === ctx.placeholderId) throw new Error(`nvlmHybrid('${name}'): tile tag id ${id} is the '${name}' placeholder; tags need ids of their own`);
    }
    const projector = ctx.addModule('projector', createProjector(this.options.projector ?? 'mlp2x_gelu', input.featureDim, ctx.hiddenSize), {
      description: 'thumbnail projector: global-view features to the LLM width (spliced)',
    });
    const spec = this.options.resampler ?? false;
    if (spec !== false) {
      this.resamplerModule = ctx.addModule('resampler', createResampler(spec, input.featureDim), {
        description: 'tile resampler: each tile to a fixed number of cross-attended tokens',
      });
    }
    const kvDim = this.resamplerModule?.outputDim ?? input.featureDim;
    const contextKey = `nvlm-hybrid:${name}`;
    this.blockList = insertCrossAttentionBlocks(ctx, this.options, { kvDim, contextKey, what: `nvlmHybrid('${name}')` });
    this.attached = { name, modality: ctx.modality, contextKey, kvDim, projector };
  }

  /** The thumbnail's tokens plus one position per tile tag. */
  tokensFor(item: unknown): number {
    const geometry = this.geometry(item, `this '${this.state().name}' item`);
    return geometry.tokensPerView + (this.tileTags ? geometry.tiles : 0);
  }

  segments(item: unknown, ctx: SegmentContext): MediaSegment[] {
    const { name, modality } = this.state();
    const geometry = this.geometry(item, ctx.where ?? `this '${name}' item`);
    const grid = thumbnailGrid(modality.gridFor?.(item, 'continuousIn'), geometry.tokensPerView);
    const thumbnail: MediaSegment = { modality: name, kind: 'features', tokens: geometry.tokensPerView, ...(grid ? { grid } : {}) };
    const tiles = Array.from({ length: geometry.tiles }, (_, i): MediaSegment => ({
      modality: name,
      kind: 'cross',
      marker: this.tileTags ? [this.tileTags[i]!] : [],
    }));
    return [thumbnail, ...tiles];
  }

  contribute({ items, layout, mode, encode }: ContributionInput): Contribution {
    const { name, contextKey, kvDim, projector } = this.state();
    const perTile = new Map<PlacedMedia, tf.Tensor>();
    const imageOf = new Map<PlacedMedia, number>();
    let tokensPerTile = this.resamplerModule?.numLatents ?? 1;
    let features: tf.Tensor[] | undefined;
    if (items.length > 0) {
      const geometries = items.map((entry) => this.geometry(entry.item, entry.where));
      const perItem = itemList(encode().features); // [views * P, D] each: every view of the item, in view order
      const thumbnails: tf.Tensor[] = [];
      const tiles: tf.Tensor[] = [];
      const tilePlaces: PlacedMedia[] = [];
      items.forEach((entry, i) => {
        const { views, thumbnailIndex, tokensPerView: P } = geometries[i]!;
        const rows = perItem[i]!;
        let tile = 0;
        for (let view = 0; view < views; view++) {
          const slice = tf.slice(rows, [view * P, 0], [P, -1]);
          if (view === thumbnailIndex) {
            thumbnails.push(slice);
            continue;
          }
          const placed = entry.placed[1 + tile++]!;
          tiles.push(slice);
          tilePlaces.push(placed);
          imageOf.set(placed, i);
        }
      });
      // One projection over every thumbnail, sliced back per item (slices, not tf.split: see early-fusion.ts).
      const projected = projector.forward(thumbnails.length === 1 ? thumbnails[0]! : tf.concat(thumbnails, 0));
      features = thumbnails.map((t, i) => tf.slice(projected, [i * t.shape[0]!, 0], [t.shape[0]!, -1]));
      if (tiles.length > 0) {
        const tileFeatures = this.resamplerModule ? resampleItems(this.resamplerModule, tiles) : tiles;
        tokensPerTile = tileFeatures[0]!.shape[0]!;
        tilePlaces.forEach((placed, k) => perTile.set(placed, tileFeatures[k]!));
      }
    }
    // A generation prompt continues past its last position: one more mask row, for the generated tokens.
    const maskLayout = mode === 'generate' ? withNextPosition(layout) : layout;
    const mask = tileCrossAttentionMask(maskLayout, {
      modality: name,
      tokensPerItem: tokensPerTile,
      mode: this.options.mode ?? 'latest',
      imageOf: (tile) => imageOf.get(tile)!,
    });
    const media =
      mask.selected.length > 0
        ? gatherMediaSlots(
            mask.selected.map((placed) => perTile.get(placed)!),
            mask,
          )
        : tf.zeros([layout.batchSize, mask.maxItems * tokensPerTile, kvDim]);
    const entry: CrossAttentionContext = { media, bias: mask.bias, hasMedia: mask.hasMedia };
    return { ...(features ? { features } : {}), context: { [contextKey]: entry } };
  }

  /** The item's views, checked against the tile budget; errors name the item as the caller gave it (`where`). */
  private geometry(item: unknown, where: string): ItemGeometry {
    const { name, modality } = this.state();
    const { views, thumbnailIndex } = this.options.views ? this.options.views(item) : readViews(item, name, where);
    if (!Number.isInteger(views) || views < 1 || !Number.isInteger(thumbnailIndex) || thumbnailIndex >= views) {
      throw new Error(`${where}: nvlmHybrid got views ${views} and thumbnailIndex ${thumbnailIndex}; expected views >= 1 and 0 <= thumbnailIndex < views`);
    }
    if (thumbnailIndex < 0) {
      throw new Error(
        `${where}: this '${name}' image has no thumbnail (${views} view(s), thumbnailIndex -1), but NVLM-H splices the ` +
          "thumbnail into the sequence. Prepare images with one: visionModality({ mode: 'tiles', thumbnail: 'last', " +
          'thumbnailWithSingleTile: true }) (a one-tile grid gets no thumbnail otherwise).',
      );
    }
    const tiles = views - 1;
    if (tiles > this.maxTiles) {
      throw new Error(
        `${where}: this '${name}' image has ${tiles} tiles, over nvlmHybrid's tile budget of ${this.maxTiles} (maxTiles). ` +
          `Prepare images with at most ${this.maxTiles} tiles (visionModality({ mode: 'tiles', maxTiles: ${this.maxTiles} })), ` +
          `or raise nvlmHybrid({ maxTiles })${this.tileTags ? ' and give a tile tag id for every tile' : ''}.`,
      );
    }
    const total = modality.tokensFor(item, 'continuousIn');
    if (total % views !== 0) {
      throw new Error(`${where}: this '${name}' item has ${total} tokens over ${views} views; NVLM-H needs views of one size (the 'tiles' mode's)`);
    }
    return { views, thumbnailIndex, tiles, tokensPerView: total / views };
  }

  private state(): Attached {
    if (!this.attached) throw new Error('nvlmHybrid: the strategy is not attached to a model yet; pass it to compose({ fusion })');
    return this.attached;
  }
}

/** The views of a vision PreparedImage ('tiles' mode), or an error saying what the item should be. */
function readViews(item: unknown, name: string, where: string): ItemViews {
  const fields = item as Partial<ItemViews> | null;
  if (!fields || typeof fields.views !== 'number' || typeof fields.thumbnailIndex !== 'number') {
    throw new Error(
      `${where}: NVLM-H needs to know which view of the '${name}' item is the thumbnail, but the item has no views / ` +
        "thumbnailIndex fields. Use the vision plugin in 'tiles' mode (visionModality({ mode: 'tiles', ... })), or pass " +
        'nvlmHybrid({ views: (item) => ({ views, thumbnailIndex }) }) for another plugin.',
    );
  }
  return { views: fields.views, thumbnailIndex: fields.thumbnailIndex };
}

/** The grid of one view (the plugin's grid counts every view as a frame), when it covers the view's tokens. */
function thumbnailGrid(grid: MediaGrid | undefined, tokensPerView: number): MediaGrid | undefined {
  return grid && grid.rows * grid.cols === tokensPerView ? { rows: grid.rows, cols: grid.cols } : undefined;
}

/** NVLM-H: the thumbnail spliced (early fusion) and the tiles through zero-gated cross-attention, with tile tags. */
export function nvlmHybrid(options: NvlmHybridOptions = {}): NvlmHybridFusion {
  return new NvlmHybridFusion(options);
}
