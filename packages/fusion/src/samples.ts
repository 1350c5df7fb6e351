/**
 * What a composed model takes: interleaved samples of text and media, in one of two forms, and their
 * resolution into core's packer segments. Each media item is handed to its modality's fusion strategy, which
 * says what the item occupies in the sequence (spliced features, a cross-attention marker, ...).
 *
 *   // parts: text runs and media items in order; `trained: false` marks a prompt (no loss on it)
 *   [{ text: [bos, ...question], trained: false }, { modality: 'image', item }, { text: answer }]
 *   // token ids with placeholder ids (the HF processor contract), media in order of their placeholders
 *   { ids: [bos, IMAGE, ...question, ...answer], media: [{ modality: 'image', item }], trained: [...] }
 *
 * A media part gives a prepared item (`item`, from the modality's prepare) or a raw input (`raw`, prepared here).
 * Text may be a string when the model has a tokenizer (encoded without special tokens).
 */
import type { MediaSegment, Modality, Segment } from '@chimera/core';
import type { TextTokenizer } from '@chimera/llm';
import { itemSize } from './item-features';
import type { FusionStrategy } from './strategies/strategy';

/** Text in a sample given as parts. */
export interface TextPart {
  /** Token ids, or text when the model has a tokenizer. */
  text: readonly number[] | string;
  /** Whether the LM loss counts these tokens (default true; false for prompts). */
  trained?: boolean;
}

/** A media item in a sample given as parts: its modality and the item, prepared or raw. */
export interface MediaPart<Prepared = unknown> {
  /** The modality's name (`image`). */
  modality: string;
  /** A prepared item (`modality.prepare(raw)`). */
  item?: Prepared;
  /** A raw input, prepared by the model. Give `item` or `raw`. */
  raw?: unknown;
}

/** One part of a sample: text or a media item. */
export type SamplePart = TextPart | MediaPart;

/** Token ids where each placeholder id (or run of them) stands for the next media item. */
export interface TokenSample {
  /** Token ids, with placeholder ids where media items go. */
  ids: readonly number[];
  /** The media items, in order of appearance. */
  media: readonly MediaPart[];
  /** One flag per id: whether the LM loss counts it (default all true). */
  trained?: readonly boolean[];
}

/** One input of a composed model: a list of parts, or token ids with placeholders. */
export type ComposedSample = readonly SamplePart[] | TokenSample;

/** What resolving samples needs to know about the model. */
export interface SampleContext {
  modalities: ReadonlyMap<string, Modality<any, any, any>>;
  strategies: ReadonlyMap<string, FusionStrategy>;
  /** modality -> placeholder id. */
  placeholders: ReadonlyMap<string, number>;
  tokenizer?: Pick<TextTokenizer, 'encode'>;
  vocabSize: number;
}

/** An item of one modality in batch order, with how many segments its strategy gave it. */
export interface ResolvedItem {
  modality: string;
  item: unknown;
  row: number;
  segments: number;
  /** How the caller gave it: `sample 0, part 1` or, in a token sample, `sample 0, media item 0`. */
  where: string;
}

export interface ResolvedSamples {
  rows: Segment[][];
  /** Per modality, its items in batch order (row by row, left to right). */
  items: Map<string, ResolvedItem[]>;
}

/** Whether a sample is given as token ids with placeholders. */
export function isTokenSample(sample: ComposedSample): sample is TokenSample {
  return !Array.isArray(sample) && typeof sample === 'object' && sample !== null && 'ids' in sample;
}

/** True when `value` is a list of samples rather than one sample given as parts. */
export function isSampleList(value: ComposedSample | readonly ComposedSample[]): value is readonly ComposedSample[] {
  if (!Array.isArray(value)) return false;
  return value.length > 0 && value.every((s) => Array.isArray(s) || isTokenSample(s as ComposedSample));
}

export function resolveSamples(samples: readonly ComposedSample[], ctx: SampleContext): ResolvedSamples {
  if (!Array.isArray(samples) || samples.length === 0) {
    throw new Error('composed model: expected a non-empty list of samples (each a list of parts or { ids, media })');
  }
  const items = new Map<string, ResolvedItem[]>();
  const rows = samples.map((sample, row) => {
    const tokenForm = isTokenSample(sample);
    const parts = tokenForm ? splitTokenSample(sample, row, ctx) : sample;
    if (!Array.isArray(parts)) {
      throw new Error(`sample ${row}: expected a list of parts ([{ text }, { modality, item }, ...]) or { ids, media }, got ${typeof sample}`);
    }
    const segments: Segment[] = [];
    let mediaIndex = 0;
    parts.forEach((part, index) => {
      const where = `sample ${row}, part ${index}`;
      if (isMediaPart(part)) {
        // A token sample's parts are ours, not the caller's: name its items by their place in `media`.
        const itemWhere = tokenForm ? `sample ${row}, media item ${mediaIndex}` : where;
        mediaIndex++;
        const { segments: made, item } = mediaSegments(part, itemWhere, ctx);
        segments.push(...made);
        const list = items.get(part.modality) ?? [];
        list.push({ modality: part.modality, item, row, segments: made.length, where: itemWhere });
        items.set(part.modality, list);
      } else if (part && typeof part === 'object' && 'text' in part) {
        const ids = textIds(part, where, ctx);
        if (ids.length > 0) segments.push({ text: ids, trained: part.trained ?? true });
      } else {
        throw new Error(`${where}: expected { text } or { modality, item }, got ${JSON.stringify(part)}`);
      }
    });
    if (segments.length === 0) throw new Error(`sample ${row} is empty; give at least one text token or media item`);
    return segments;
  });
  return { rows, items };
}

function isMediaPart(part: SamplePart): part is MediaPart {
  return typeof part === 'object' && part !== null && typeof (part as MediaPart).modality === 'string';
}

function mediaSegments(part: MediaPart, where: string, ctx: SampleContext): { segments: MediaSegment[]; item: unknown } {
  const item = preparedItem(part, where, ctx);
  const segments = ctx.strategies.get(part.modality)!.segments(item, { placeholderId: ctx.placeholders.get(part.modality), where });
  return { segments, item };
}

/** The part's item (prepared from `raw` when given so), checked to be a sized, non-empty item of its modality. */
function preparedItem(part: MediaPart, where: string, ctx: SampleContext): unknown {
  const modality = ctx.modalities.get(part.modality);
  const strategy = ctx.strategies.get(part.modality);
  if (!modality || !strategy) {
    const known = [...ctx.modalities.keys()];
    throw new Error(
      `${where} gives an '${part.modality}' item, but this model has no '${part.modality}' modality ` +
        `(it has: ${known.join(', ') || 'none'}). Compose the model with a '${part.modality}' plugin and a fusion ` +
        'strategy for it, or leave the item out.',
    );
  }
  let item = part.item;
  if (item === undefined) {
    if (part.raw === undefined) {
      throw new Error(`${where}: the '${part.modality}' part has neither item (prepared) nor raw; give one of them`);
    }
    item = modality.prepare(part.raw);
  }
  itemSize(part.modality, modality, { item, where });
  return item;
}

function textIds(part: TextPart, where: string, ctx: SampleContext): number[] {
  let ids: number[];
  if (typeof part.text === 'string') {
    if (!ctx.tokenizer) {
      throw new Error(`${where}: text is a string but the model has no tokenizer; pass token ids or compose({ tokenizer })`);
    }
    ids = ctx.tokenizer.encode(part.text, { addSpecialTokens: false });
  } else if (Array.isArray(part.text)) {
    ids = [...part.text];
  } else {
    throw new Error(`${where}: text must be token ids (number[]) or a string, got ${typeof part.text}`);
  }
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= ctx.vocabSize) {
      throw new Error(`${where}: token id ${id} at index ${i} is outside the LLM's vocabulary [0, ${ctx.vocabSize})`);
    }
    for (const [modality, placeholder] of ctx.placeholders) {
      if (id === placeholder) {
        throw new Error(
          `${where}: the text holds the <${modality}> placeholder (id ${id}) at index ${i}, but no ${modality} item ` +
            `is given there. Put a { modality: '${modality}', item } part in its place, or use the token form ` +
            '{ ids, media } with one media item per placeholder.',
        );
      }
    }
  });
  return ids;
}

/**
 * Splits a token sample into parts. One placeholder per item when the counts agree; otherwise each run of a
 * placeholder id is one item and its length must equal the positions the item takes (pre-expanded).
 */
function splitTokenSample(sample: TokenSample, row: number, ctx: SampleContext): SamplePart[] {
  const where = `sample ${row}`;
  const { ids, media } = sample;
  if (!Array.isArray(ids) || !Array.isArray(media)) {
    throw new Error(`${where}: a token sample needs ids (number[]) and media (a list of { modality, item }), got ${JSON.stringify(Object.keys(sample))}`);
  }
  const trained = sample.trained ?? ids.map(() => true);
  if (trained.length !== ids.length) {
    throw new Error(`${where}: trained has ${trained.length} flags for ${ids.length} ids; give one flag per id`);
  }
  const modalityOf = new Map<number, string>();
  for (const [modality, id] of ctx.placeholders) modalityOf.set(id, modality);
  const placeholderCount = ids.filter((id) => modalityOf.has(id)).length;
  const single = placeholderCount === media.length;
  if (placeholderCount === 0 && media.length > 0) {
    throw new Error(
      `${where}: ${media.length} media item(s) but no placeholder in ids` +
        (ctx.placeholders.size === 0 ? ' (the model has no placeholder ids: compose({ placeholders: { image: id } }))' : '') +
        '; put a placeholder id where each item goes, or give the sample as parts',
    );
  }
  const parts: SamplePart[] = [];
  let text: number[] = [];
  let textTrained = true;
  const flush = () => {
    if (text.length > 0) parts.push({ text, trained: textTrained });
    text = [];
  };
  let next = 0;
  for (let i = 0; i < ids.length; ) {
    const id = ids[i]!;
    const modality = modalityOf.get(id);
    if (modality === undefined) {
      if (text.length > 0 && trained[i] !== textTrained) flush();
      if (text.length === 0) textTrained = trained[i]!;
      text.push(id);
      i++;
      continue;
    }
    const part = media[next];
    if (!part) {
      throw new Error(
        `${where}: the <${modality}> placeholder (id ${id}) at index ${i} has no ${modality} item: the sample gives ` +
          `${media.length} media item(s) for ${placeholderCount} placeholder id(s). Add the missing item to media, or ` +
          'remove the placeholder.',
      );
    }
    if (part.modality !== modality) {
      throw new Error(
        `${where}: media item ${next} is '${part.modality}' but the placeholder at index ${i} is <${modality}> (id ${id}); ` +
          'list the media items in the order of their placeholders',
      );
    }
    let run = 1;
    if (!single) while (ids[i + run] === id) run++;
    if (!single) {
      const strategy = ctx.strategies.get(modality)!;
      const item = preparedItem(part, `${where}, media item ${next}`, ctx);
      const needed = strategy.tokensFor(item);
      if (run !== needed) {
        throw new Error(
          `${where}: ${modality} item ${next} takes ${needed} position(s) but the sequence has a run of ${run} ` +
            `<${modality}> placeholder(s) at index ${i} (the sample gives ${media.length} media item(s) for ` +
            `${placeholderCount} placeholder id(s), so runs are read as pre-expanded items); give one placeholder per ` +
            `item, or expand each to its size`,
        );
      }
      flush();
      parts.push({ modality, item });
    } else {
      flush();
      parts.push(part);
    }
    next++;
    i += run;
  }
  flush();
  if (next < media.length) {
    throw new Error(
      `${where}: the sample gives ${media.length} media item(s) but only ${next} placeholder(s); add a placeholder ` +
        'id for each item (or remove the extra items)',
    );
  }
  return parts;
}
