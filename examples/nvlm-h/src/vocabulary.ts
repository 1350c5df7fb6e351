// The shared VQA vocabulary (shapes-vqa) plus NVLM's 1-D tile tags <tile_1> ... <tile_16>, one token each, after it.
import { VOCAB_SIZE } from '@chimera-examples/shapes-vqa';

/** The tile budget: tags exist for this many tiles (a 128 px image at 32 px tiles is 4 x 4). */
export const MAX_TILE_TAGS = 16;

/** Token ids of <tile_1> ... <tile_16>. */
export const TILE_TAGS: readonly number[] = Array.from({ length: MAX_TILE_TAGS }, (_, i) => VOCAB_SIZE + i);

/** The LLM's vocabulary: the shared words and specials, then the tags. */
export const LLM_VOCAB_SIZE = VOCAB_SIZE + MAX_TILE_TAGS;

/** '<tile_3>' for the tag id, else null. */
export function tileTagName(id: number): string | null {
  const i = TILE_TAGS.indexOf(id);
  return i >= 0 ? `<tile_${i + 1}>` : null;
}
