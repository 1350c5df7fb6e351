/**
 * Turns a token-id sample with placeholder ids into segments, the HF processor contract: a media item is
 * either one placeholder (expanded here to the item's size) or a pre-expanded run whose length is checked.
 */
import type { MediaSegment, Segment, TokenSample } from './segments';

/** `single`: one placeholder per item; `expanded`: runs already of the item's size; `auto`: decided per row. */
export type PlaceholderMode = 'auto' | 'single' | 'expanded';

/** Splits `sample.ids` at its placeholders into text and media segments. `row` is for error messages. */
export function expandPlaceholders(
  sample: TokenSample,
  placeholderIds: Readonly<Record<string, number>>,
  mode: PlaceholderMode = 'auto',
  row = 0,
): Segment[] {
  const where = `row ${row}`;
  const modalityOfId = new Map<number, string>();
  for (const [modality, id] of Object.entries(placeholderIds)) {
    const other = modalityOfId.get(id);
    if (other !== undefined) {
      throw new Error(`placeholder id ${id} is used by both '${other}' and '${modality}'; give each modality its own id`);
    }
    modalityOfId.set(id, modality);
  }
  const { ids, media } = sample;
  const trained = sample.trained ?? ids.map(() => true);
  if (trained.length !== ids.length) {
    throw new Error(`${where}: trained has ${trained.length} flags for ${ids.length} ids; give one flag per id`);
  }
  const placeholderCount = ids.filter((id) => modalityOfId.has(id)).length;
  const single = mode === 'single' || (mode === 'auto' && placeholderCount === media.length);

  const segments: Segment[] = [];
  let run: number[] = [];
  let runTrained = true;
  const flush = (): void => {
    if (run.length > 0) segments.push({ text: run, trained: runTrained });
    run = [];
  };

  let next = 0;
  for (let i = 0; i < ids.length; ) {
    const id = ids[i]!;
    const modality = modalityOfId.get(id);
    if (modality === undefined) {
      if (run.length > 0 && trained[i] !== runTrained) flush();
      if (run.length === 0) runTrained = trained[i]!;
      run.push(id);
      i++;
      continue;
    }
    const item = media[next];
    if (!item) {
      throw new Error(
        `${where}: placeholder <${modality}> (id ${id}) at index ${i} has no media item; the sample lists ` +
          `${media.length} item(s) for ${placeholderCount} placeholder id(s). Add the missing item or remove the placeholder.`,
      );
    }
    if (item.modality !== modality) {
      throw new Error(
        `${where}: media item ${next} is '${item.modality}' but the placeholder at index ${i} is <${modality}> (id ${id}); ` +
          'list the media items in the order their placeholders appear',
      );
    }
    flush();
    const kind = item.kind ?? 'features';
    const declared = kind === 'codes' ? (item.tokens ?? item.codes?.length) : item.tokens;
    let consumed: number;
    let segment: MediaSegment;
    if (kind === 'cross') {
      // A cross-attended item is not in the sequence: its placeholder stays as a marker token.
      consumed = 1;
      segment = { ...item, marker: item.marker ?? [id] };
    } else if (single) {
      if (declared === undefined) {
        throw new Error(
          `${where}: ${modality} item ${next} has no tokens count to expand its single placeholder to; ` +
            'build it with mediaSegment() (which calls Modality.tokensFor) or pre-expand the placeholders',
        );
      }
      consumed = 1;
      segment = item;
    } else {
      let runLength = 0;
      while (ids[i + runLength] === id) runLength++;
      const size = declared ?? runLength;
      if (size > runLength) {
        throw new Error(
          `${where}: ${modality} item ${next} needs ${size} positions but the sequence has a run of ${runLength} ` +
            `<${modality}> placeholder(s) at index ${i}; expand the placeholders to ${size} or fix the item's tokens`,
        );
      }
      consumed = size;
      segment = { ...item, tokens: size };
    }
    segments.push(segment);
    next++;
    i += consumed;
  }
  flush();
  if (next < media.length) {
    throw new Error(
      `${where}: the sample lists ${media.length} media item(s) but only ${next} placeholder slot(s) were found; ` +
        'add a placeholder for each item',
    );
  }
  return segments;
}
