/**
 * The packer's input: an interleaved sample as text runs (token ids) and media items, each optionally
 * flagged trained or not (prompt vs answer). `mediaSegment` fills an item's size from its modality, so the
 * sequence agrees with what the encoder or tokenizer will produce.
 */
import { requirePath, type MediaGrid, type Modality, type ModalityPath } from './contract';

/**
 * How a media item enters the model:
 * - `features`: continuous features spliced into the sequence (LLaVA, Fuyu, Qwen2-VL);
 * - `codes`: discrete codes, autoregressively predicted (Chameleon, Janus generation);
 * - `latents`: diffusion latents in the sequence, denoised by a head on their hidden states (Transfusion);
 * - `cross`: not in the sequence; seen through cross-attention, optionally behind marker tokens (Flamingo).
 */
export type MediaKind = 'features' | 'codes' | 'latents' | 'cross';

/** Every {@link MediaKind}. */
export const MEDIA_KINDS: readonly MediaKind[] = ['features', 'codes', 'latents', 'cross'];

/** A run of text token ids in a sample. */
export interface TextSegment {
  /** Token ids. */
  text: number[];
  /** Whether the text head learns to predict these tokens (default true; false for prompts). */
  trained?: boolean;
  /** Part of the bidirectional prefix (prefix-LM); overrides the `prefixLM` rule for this row. */
  prefix?: boolean;
}

/**
 * One media item in a sample: its modality, how it enters the model, and how many positions it occupies (see {@link
 * mediaSegment}).
 */
export interface MediaSegment {
  /** Name of its modality. */
  modality: string;
  /** Default `features`. */
  kind?: MediaKind;
  /** Positions the item occupies (Modality.tokensFor). Codes: defaults to codes.length; cross: marker length. */
  tokens?: number;
  /** Grid of the positions (for M-RoPE), frame-major then row then column. */
  grid?: MediaGrid;
  /** Discrete codes, for kind `codes`. */
  codes?: number[];
  /** Text ids standing for a cross-attended item in the sequence (Flamingo's `<image>`); default none. */
  marker?: number[];
  /**
   * Whether a head learns this item: code targets for `codes`, diffusion loss for `latents` (default true for
   * both); meaningless for `features` and `cross`.
   */
  trained?: boolean;
  /** Part of the bidirectional prefix (prefix-LM); overrides the `prefixLM` rule for this row. */
  prefix?: boolean;
  /** Attend bidirectionally inside this item; default from the packer's `bidirectionalMedia`. */
  bidirectional?: boolean;
}

/** A text run or a media item. */
export type Segment = TextSegment | MediaSegment;

/**
 * A sample given as token ids with placeholder ids standing for media (one per item, or pre-expanded runs),
 * plus the media items in order of appearance.
 */
export interface TokenSample {
  /** Token ids, with placeholder ids where media items go. */
  ids: number[];
  /** The media items, in order of appearance. */
  media: MediaSegment[];
  /** Per id: trained or not (default all trained). */
  trained?: boolean[];
}

/** One packer input: a list of segments, or token ids with placeholders. */
export type Sample = Segment[] | TokenSample;

/** Whether a segment is a media item. */
export function isMediaSegment(segment: Segment): segment is MediaSegment {
  return (segment as MediaSegment).modality !== undefined;
}

/** Whether a sample is given as token ids with placeholders (rather than segments). */
export function isTokenSample(sample: Sample): sample is TokenSample {
  return !Array.isArray(sample);
}

/** The modality path that produces what a kind of item needs. */
export function pathForKind(kind: MediaKind): ModalityPath {
  switch (kind) {
    case 'features':
    case 'cross':
      return 'continuousIn';
    case 'codes':
      return 'discrete';
    case 'latents':
      return 'continuousOut';
  }
}

/**
 * A media segment sized by its modality: `tokens` from `tokensFor` and `grid` from `gridFor` on the path the
 * kind uses. For `cross`, `tokens` is the marker length (the item itself is not in the sequence).
 */
export function mediaSegment<Prepared>(
  modality: Modality<any, Prepared, any>,
  item: Prepared,
  options: Omit<MediaSegment, 'modality' | 'tokens' | 'grid'> = {},
): MediaSegment {
  const kind = options.kind ?? 'features';
  const path = pathForKind(kind);
  requirePath(modality, path);
  const grid = modality.gridFor?.(item, path);
  if (kind === 'cross') return { ...options, modality: modality.name, kind, ...(grid ? { grid } : {}) };
  return { ...options, modality: modality.name, kind, tokens: modality.tokensFor(item, path), ...(grid ? { grid } : {}) };
}
