/**
 * The packer's layout step, in plain JS arrays: places each row's segments into a padded [B, T] grid and
 * records, per position, its id, modality, kind, trained flag, position ids and where its embedding comes
 * from. Tensors are made from this later (sequence-batch.ts, splice.ts), so the layout is easy to test.
 */
import type { MediaGrid } from './contract';
import { expandPlaceholders, type PlaceholderMode } from './placeholders';
import { rowPositions, type PositionMode, type PositionSpan } from './positions';
import { ModalityRegistry, unknownModalityError } from './registry';
import {
  MEDIA_KINDS,
  isMediaSegment,
  isTokenSample,
  type MediaKind,
  type MediaSegment,
  type Sample,
  type Segment,
} from './segments';
import { layoutTargets, type LayoutTargets } from './targets';

/**
 * Options of the packer ({@link layoutSequences}, {@link packSequences}): modalities, placeholders, padding,
 * positions and attention rules.
 */
export interface PackOptions {
  /** Modality names in routing order (tokenModality k is the k-th, 0 is text), or a registry. */
  modalities: readonly string[] | ModalityRegistry;
  /**
   * Id written into inputIds at each modality's positions, and recognised as its placeholder in token-id
   * samples (default: padId). It must be a valid row of the text embedding table.
   */
  placeholderIds?: Readonly<Record<string, number>>;
  /** How placeholder ids in token samples stand for items (default 'auto'). */
  placeholderMode?: PlaceholderMode;
  /** Id of padding positions (default 0). */
  padId?: number;
  /** Side padding goes on (default right; left for batched generation). */
  padding?: 'right' | 'left';
  /** Longest allowed row; a longer one is an error. */
  maxLength?: number;
  /** Pad every row to exactly this length (default: the longest row). */
  padTo?: number;
  /** Position ids (default sequential). */
  positions?: PositionMode;
  /** Attend bidirectionally inside `features` and `latents` items (Transfusion); `codes` stay causal. */
  bidirectionalMedia?: boolean;
  /** Prefix-LM (PaliGemma): each row's leading untrained segments (media, prompt) attend bidirectionally. */
  prefixLM?: boolean;
  /**
   * Modalities whose codes live in the text vocabulary at this offset (Chameleon): inputIds hold
   * offset + code, the text table embeds them and the text head predicts them.
   */
  unifiedVocab?: Readonly<Record<string, number>>;
}

/**
 * Per-position kind codes in `SequenceLayout.tokenKind`: padding, text, a cross-attended item's marker text, and
 * the three in-sequence {@link MediaKind}s (features, codes, latents).
 */
export const TOKEN_KIND = { pad: 0, text: 1, marker: 2, features: 3, codes: 4, latents: 5 } as const;

/** A media item as placed in the batch. */
export interface PlacedMedia {
  /** Batch row. */
  row: number;
  /** Order among the row's media items. */
  indexInRow: number;
  /** Modality name. */
  modality: string;
  /** Its tokenModality value. */
  routingIndex: number;
  /** How the item enters the model. */
  kind: MediaKind;
  /** First position (padded coordinates). For `cross`: the first marker, or where the next token sits. */
  start: number;
  /** Positions in the sequence (marker length for `cross`). */
  length: number;
  /** Index among the batch's items of the same modality and kind, in batch order: the order of their features. */
  sourceIndex: number;
  /** Whether a head learns the item: code targets for `codes`, diffusion loss for `latents` (see MediaSegment.trained). */
  trained: boolean;
  /** Grid of its positions, when it has one. */
  grid?: MediaGrid;
  /** Its discrete codes (kind `codes`). */
  codes?: number[];
}

/** Items whose rows are spliced from one caller-supplied source (features, latents or code embeddings). */
export interface SpliceSource {
  /** Modality name. */
  modality: string;
  /** Which caller-supplied tensor the rows come from. */
  kind: 'features' | 'latents' | 'codes';
  /** The items, in source order. */
  items: PlacedMedia[];
  /** Total rows (sum of item lengths). */
  rows: number;
}

/**
 * The packer's plain-JS result: a padded [B, T] grid with, per position, its id, modality, kind, trained flag,
 * positions and embedding source, plus the media items and targets. {@link SequenceBatch} makes the tensors from it.
 */
export interface SequenceLayout {
  /** Rows B. */
  batchSize: number;
  /** Padded length T. */
  length: number;
  /** Modality names in routing order (tokenModality k is the k-th, 0 is text). */
  modalityNames: string[];
  /** Side the padding is on. */
  padding: 'right' | 'left';
  /** How position ids were assigned. */
  positionMode: PositionMode;
  /** Real tokens per row, and where they start (non-zero under left padding). */
  rowLengths: number[];
  /** Where each row's real tokens start (non-zero under left padding). */
  rowStarts: number[];
  /** Flat [B*T] arrays, row-major. */
  inputIds: Int32Array;
  /** Flat [B*T]: 0 text (and padding, markers), k the k-th of modalityNames. */
  tokenModality: Int32Array;
  /** Flat [B*T]: a {@link TOKEN_KIND} code per position. */
  tokenKind: Uint8Array;
  /** 1 where the embedding comes from the text table (text, markers, unified codes, padding). */
  textVocab: Uint8Array;
  /** 1 on real positions. */
  paddingMask: Uint8Array;
  /** The own segment's trained flag. */
  trained: Uint8Array;
  /** Flat [B*T]: 1 on positions in the bidirectional prefix (prefix-LM). */
  prefix: Uint8Array;
  /** Bidirectional block id, -1 outside blocks. */
  block: Int32Array;
  /** Code at code positions, else -1. */
  codeIds: Int32Array;
  /** [B*T] for 1-D, or [3*B*T] laid out [3, B, T] for M-RoPE. */
  positions: Int32Array;
  /** 1 for 1-D positions, 3 for M-RoPE. */
  positionRank: 1 | 3;
  /** Per row, the position id of the next appended token. */
  nextPositions: number[];
  /** Per position, how many of its row's media items start at or before it (OpenFlamingo's text_time). */
  mediaLocations: Int32Array;
  /** Every media item, in batch order. */
  media: PlacedMedia[];
  /** Splice sources (features, latents, code embeddings) the media rows come from. */
  sources: SpliceSource[];
  /** Per position: index into `sources` (-1: text table) and the row within that source. */
  spliceSource: Int32Array;
  /** Flat [B*T]: row within the position's splice source (-1 for text). */
  spliceRow: Int32Array;
  /** Per-head targets and loss masks. */
  targets: LayoutTargets;
}

interface ResolvedSegment {
  kind: 'text' | MediaKind;
  modality: string | null;
  routing: number;
  ids: number[];
  trained: boolean;
  prefix: boolean | undefined;
  bidirectional: boolean;
  textVocab: boolean;
  media: MediaSegment | null;
  label: string;
}

/**
 * Lays out samples (segments or token samples with placeholders) into a {@link SequenceLayout}: placeholder expansion
 * and checks, padding, positions, attention-rule arrays and targets, all in plain JS.
 */
export function layoutSequences(samples: readonly Sample[], options: PackOptions): SequenceLayout {
  if (samples.length === 0) throw new Error('packSequences: the batch is empty; pass at least one sample');
  const names = options.modalities instanceof ModalityRegistry ? options.modalities.names() : [...options.modalities];
  const padId = options.padId ?? 0;
  const padding = options.padding ?? 'right';
  const positionMode = options.positions ?? 'sequential';
  checkKnownKeys(options.placeholderIds, names, 'placeholderIds');
  checkKnownKeys(options.unifiedVocab, names, 'unifiedVocab');

  const rows = samples.map((sample, r) => resolveRow(sample, r, names, options, padId));
  const rowLengths = rows.map((segs) => segs.reduce((n, s) => n + s.ids.length, 0));
  const longest = Math.max(...rowLengths);
  if (options.maxLength !== undefined) {
    const r = rowLengths.findIndex((n) => n > options.maxLength!);
    if (r >= 0) {
      throw new Error(
        `row ${r} needs ${rowLengths[r]} positions (${describeRow(rows[r]!)}) but maxLength is ${options.maxLength}; ` +
          'shorten the text, use fewer or smaller media items, or raise maxLength',
      );
    }
  }
  if (options.padTo !== undefined && options.padTo < longest) {
    const r = rowLengths.indexOf(longest);
    throw new Error(`row ${r} needs ${longest} positions but padTo is ${options.padTo}; raise padTo or shorten the row`);
  }
  const B = samples.length;
  const T = options.padTo ?? longest;
  const size = B * T;
  const rank = positionMode === 'mrope' ? 3 : 1;
  const layout: Omit<SequenceLayout, 'targets'> = {
    batchSize: B,
    length: T,
    modalityNames: names,
    padding,
    positionMode,
    rowLengths,
    rowStarts: rowLengths.map((n) => (padding === 'left' ? T - n : 0)),
    inputIds: new Int32Array(size).fill(padId),
    tokenModality: new Int32Array(size),
    tokenKind: new Uint8Array(size),
    textVocab: new Uint8Array(size).fill(1),
    paddingMask: new Uint8Array(size),
    trained: new Uint8Array(size),
    prefix: new Uint8Array(size),
    block: new Int32Array(size).fill(-1),
    codeIds: new Int32Array(size).fill(-1),
    positions: new Int32Array(rank * size),
    positionRank: rank,
    nextPositions: [],
    mediaLocations: new Int32Array(size),
    media: [],
    sources: [],
    spliceSource: new Int32Array(size).fill(-1),
    spliceRow: new Int32Array(size).fill(-1),
  };

  const sourceIndexOf = new Map<string, number>(); // `${modality}/${kind}` -> next sourceIndex
  const spliceOf = new Map<string, number>(); // `${modality}/${kind}` -> index into layout.sources
  let nextBlock = 0;
  rows.forEach((segments, r) => {
    const base = r * T;
    let t = layout.rowStarts[r]!;
    const spans: PositionSpan[] = [];
    let mediaInRow = 0;
    for (const seg of segments) {
      const n = seg.ids.length;
      const block = seg.bidirectional && n > 0 ? nextBlock++ : -1;
      let placed: PlacedMedia | null = null;
      if (seg.media) {
        const kind = seg.kind as MediaKind;
        const key = `${seg.modality}/${kind}`;
        const sourceIndex = sourceIndexOf.get(key) ?? 0;
        sourceIndexOf.set(key, sourceIndex + 1);
        placed = {
          row: r,
          indexInRow: mediaInRow++,
          modality: seg.modality!,
          routingIndex: seg.routing,
          kind,
          start: t,
          length: n,
          sourceIndex,
          trained: seg.trained,
          ...(seg.media.grid ? { grid: seg.media.grid } : {}),
          ...(seg.media.codes ? { codes: seg.media.codes } : {}),
        };
        layout.media.push(placed);
        if (!seg.textVocab) {
          let s = spliceOf.get(key);
          if (s === undefined) {
            s = layout.sources.length;
            spliceOf.set(key, s);
            layout.sources.push({ modality: placed.modality, kind: kind as SpliceSource['kind'], items: [], rows: 0 });
          }
          const source = layout.sources[s]!;
          for (let i = 0; i < n; i++) {
            layout.spliceSource[base + t + i] = s;
            layout.spliceRow[base + t + i] = source.rows + i;
          }
          source.items.push(placed);
          source.rows += n;
        }
      }
      const kindCode = seg.kind === 'cross' ? TOKEN_KIND.marker : TOKEN_KIND[seg.kind];
      for (let i = 0; i < n; i++) {
        const p = base + t + i;
        layout.inputIds[p] = seg.ids[i]!;
        layout.tokenModality[p] = seg.kind === 'cross' ? 0 : seg.routing;
        layout.tokenKind[p] = kindCode;
        layout.textVocab[p] = seg.textVocab ? 1 : 0;
        layout.paddingMask[p] = 1;
        layout.trained[p] = seg.trained ? 1 : 0;
        layout.prefix[p] = seg.prefix ? 1 : 0;
        layout.block[p] = block;
        if (seg.kind === 'codes') layout.codeIds[p] = seg.media!.codes![i]!;
      }
      spans.push({ length: n, media: seg.media !== null && seg.kind !== 'cross', grid: seg.media?.grid, label: seg.label });
      t += n;
    }
    const { axes, next } = rowPositions(spans, positionMode);
    const start = layout.rowStarts[r]!;
    axes.forEach((axis, a) => layout.positions.set(axis, a * size + base + start));
    layout.nextPositions.push(next);
  });

  // OpenFlamingo's text_time: items of the row that start at or before each position.
  for (const item of layout.media) {
    const base = item.row * T;
    for (let t = item.start; t < T; t++) layout.mediaLocations[base + t]! += 1;
  }
  return { ...layout, targets: layoutTargets(layout) };
}

function resolveRow(
  sample: Sample,
  row: number,
  names: readonly string[],
  options: PackOptions,
  padId: number,
): ResolvedSegment[] {
  let segments: Segment[];
  if (isTokenSample(sample)) {
    for (const item of sample.media) {
      if (!names.includes(item.modality)) throw unknownModalityError(item.modality, names, ` in row ${row}`);
    }
    segments = expandPlaceholders(sample, options.placeholderIds ?? {}, options.placeholderMode, row);
  } else {
    segments = sample;
  }
  const resolved = segments.map((segment, i) => resolveSegment(segment, row, i, names, options, padId));
  // Prefix: explicit flags win for the row; otherwise prefixLM takes the leading untrained segments.
  if (!resolved.some((s) => s.prefix !== undefined)) {
    let inPrefix = options.prefixLM === true;
    for (const seg of resolved) {
      const learns = seg.kind === 'text' || seg.kind === 'codes' || seg.kind === 'latents' ? seg.trained : false;
      if (learns) inPrefix = false;
      seg.prefix = inPrefix;
    }
  }
  return resolved;
}

function resolveSegment(
  segment: Segment,
  row: number,
  index: number,
  names: readonly string[],
  options: PackOptions,
  padId: number,
): ResolvedSegment {
  const where = `row ${row} segment ${index}`;
  if (!isMediaSegment(segment)) {
    if (!Array.isArray(segment.text)) {
      throw new Error(`${where}: expected { text: number[] } or { modality: string, ... }, got ${JSON.stringify(segment)}`);
    }
    checkIds(segment.text, `${where} text`);
    return {
      kind: 'text',
      modality: null,
      routing: 0,
      ids: segment.text,
      trained: segment.trained ?? true,
      prefix: segment.prefix,
      bidirectional: false,
      textVocab: true,
      media: null,
      label: `${where} (text)`,
    };
  }
  const modality = segment.modality;
  const routing = names.indexOf(modality) + 1;
  if (routing === 0) throw unknownModalityError(modality, names, ` in ${where}`);
  const kind = segment.kind ?? 'features';
  if (!MEDIA_KINDS.includes(kind)) {
    throw new Error(`${where}: unknown media kind '${kind}'; expected one of ${MEDIA_KINDS.join(', ')}`);
  }
  const label = `${modality} item in ${where}`;
  const placeholder = options.placeholderIds?.[modality] ?? padId;
  const base = {
    kind,
    modality,
    routing,
    prefix: segment.prefix,
    media: segment,
    label,
  };
  if (kind === 'cross') {
    const marker = segment.marker ?? [];
    checkIds(marker, `${where} marker`);
    return { ...base, ids: marker, trained: false, bidirectional: false, textVocab: true };
  }
  if (kind === 'codes') {
    const codes = segment.codes;
    if (!Array.isArray(codes) || codes.length === 0) {
      throw new Error(`${where}: a ${modality} 'codes' item needs codes (Modality.discrete.tokenize output); got none`);
    }
    checkIds(codes, `${where} codes`);
    if (segment.tokens !== undefined && segment.tokens !== codes.length) {
      throw new Error(`${where}: ${modality} item declares ${segment.tokens} tokens but has ${codes.length} codes; they must agree`);
    }
    const offset = options.unifiedVocab?.[modality];
    const ids = offset === undefined ? codes.map(() => placeholder) : codes.map((c) => offset + c);
    return {
      ...base,
      ids,
      trained: segment.trained ?? true,
      bidirectional: segment.bidirectional ?? false,
      textVocab: offset !== undefined,
    };
  }
  const tokens = segment.tokens;
  if (tokens === undefined || !Number.isInteger(tokens) || tokens < 1) {
    throw new Error(
      `${where}: a ${modality} '${kind}' item needs a positive integer tokens count, got ${String(tokens)}; ` +
        'build it with mediaSegment() (which calls Modality.tokensFor)',
    );
  }
  return {
    ...base,
    ids: new Array<number>(tokens).fill(placeholder),
    trained: kind === 'latents' ? (segment.trained ?? true) : false,
    bidirectional: segment.bidirectional ?? options.bidirectionalMedia ?? false,
    textVocab: false,
  };
}

function checkIds(ids: readonly number[], what: string): void {
  const bad = ids.findIndex((id) => !Number.isInteger(id) || id < 0);
  if (bad >= 0) throw new Error(`${what}: ids must be non-negative integers, got ${ids[bad]} at index ${bad}`);
}

function checkKnownKeys(record: Readonly<Record<string, number>> | undefined, names: readonly string[], what: string): void {
  for (const key of Object.keys(record ?? {})) {
    if (!names.includes(key)) throw unknownModalityError(key, names, ` in options.${what}`);
  }
}

function describeRow(segments: readonly ResolvedSegment[]): string {
  const counts = new Map<string, number>();
  for (const s of segments) {
    const key = s.modality ?? 'text';
    counts.set(key, (counts.get(key) ?? 0) + s.ids.length);
  }
  return [...counts].map(([k, n]) => `${k} ${n}`).join(', ');
}
