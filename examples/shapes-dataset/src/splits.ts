// Train / validation / test splits as disjoint ranges of 32-bit sample ids: sample `index` of a split has id
// `start + index`, and its scene seed is a bijection of that id, so no two samples of different splits (or of
// one split) ever share a seed.

export const SPLIT_NAMES = ['train', 'validation', 'test'] as const;
export type SplitName = (typeof SPLIT_NAMES)[number];

export interface SplitRange {
  /** First sample id. */
  start: number;
  /** Number of samples (ids start .. start + size - 1). */
  size: number;
}

export const SPLITS: Readonly<Record<SplitName, SplitRange>> = {
  train: { start: 0, size: 2 ** 31 },
  validation: { start: 2 ** 31, size: 2 ** 30 },
  test: { start: 2 ** 31 + 2 ** 30, size: 2 ** 30 },
};

/** The 32-bit id of sample `index` of a split; throws for an unknown split or an index outside it. */
export function sampleId(split: SplitName, index: number): number {
  const range = SPLITS[split];
  if (!range) throw new Error(`unknown split '${String(split)}'; expected one of ${SPLIT_NAMES.join(', ')}`);
  if (!(Number.isInteger(index) && index >= 0 && index < range.size)) {
    throw new Error(`sample index ${index} is outside split '${split}': expected an integer in [0, ${range.size})`);
  }
  return range.start + index;
}

/** Which split a sample id belongs to. */
export function splitOf(id: number): SplitName {
  for (const name of SPLIT_NAMES) {
    const { start, size } = SPLITS[name];
    if (id >= start && id < start + size) return name;
  }
  throw new Error(`sample id ${id} is outside every split (expected an integer in [0, 2^32))`);
}
