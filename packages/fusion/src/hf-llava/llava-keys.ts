/**
 * The key table between a composed LLaVA-style model and HF's LlavaForConditionalGeneration checkpoint: the
 * vision package's CLIP/SigLIP table under the tower's prefix, the projector's two Linears, and the LLM's
 * LLAMA_HF_REMAP under the language model's prefix. PyTorch [out, in] Linear and [out, in, kH, kW] conv weights
 * are transposed by the tables' layouts.
 *
 * Two layouts, by the module tree of the transformers version that wrote the file:
 *   'transformers<4.52'   vision_tower.vision_model.*, multi_modal_projector.*, language_model.model.*,
 *                         language_model.lm_head.weight  (every LLaVA on the Hub, e.g. llava-hf/llava-1.5-7b-hf;
 *                         transformers 4.52+ still loads it through LlavaForConditionalGeneration's
 *                         _checkpoint_conversion_mapping)
 *   'transformers>=4.52'  model.vision_tower.vision_model.*, model.multi_modal_projector.*, model.language_model.*,
 *                         lm_head.weight  (the module tree of 4.52 and later)
 */
import { concatTables, prefixTable, type RemapRule, type RemapTable } from '@chimera/core';
import { LLAMA_HF_REMAP } from '@chimera/llm';
import type { LlavaParts, LlavaVisionEncoderFunctions } from './llava-parts';

/** A LLaVA checkpoint's key layout, named by the transformers versions whose module tree it is (see the file comment). */
export type LlavaLayout = 'transformers<4.52' | 'transformers>=4.52';

/** Both layouts, the default (what exportLlava writes unless told) first. */
export const LLAVA_LAYOUTS: readonly LlavaLayout[] = ['transformers<4.52', 'transformers>=4.52'];

/** Where each part sits in a layout. */
const PREFIXES: Record<LlavaLayout, { vision: string; projector: string }> = {
  'transformers<4.52': { vision: 'vision_tower.vision_model.', projector: 'multi_modal_projector.' },
  'transformers>=4.52': { vision: 'model.vision_tower.vision_model.', projector: 'model.multi_modal_projector.' },
};

const PROJECTOR_TABLE: RemapTable = {
  rules: ([1, 2] as const).flatMap((n): RemapRule[] => [
    { external: `linear_${n}.weight`, internal: `linear_${n}.weight`, layout: 'linear' },
    { external: `linear_${n}.bias`, internal: `linear_${n}.bias` },
  ]),
};

/** LLAMA_HF_REMAP (names `model.*`, `lm_head.weight`) moved under the layout's language-model names. */
function languageModelTable(layout: LlavaLayout): RemapTable {
  if (layout === 'transformers<4.52') return prefixTable(LLAMA_HF_REMAP, { external: 'language_model.', internal: 'llm.' });
  const rules = LLAMA_HF_REMAP.rules.map((rule): RemapRule => {
    if (typeof rule.external !== 'string') throw new Error('LLaVA keys: LLAMA_HF_REMAP gained a RegExp rule; extend languageModelTable');
    return { ...rule, external: rule.external.replace(/^model\./, 'model.language_model.'), internal: `llm.${rule.internal}` };
  });
  return { ...LLAMA_HF_REMAP, rules, ignoreExternal: ['**.rotary_emb.inv_freq'] };
}

/** The whole model's table for `layout` (stated in the import direction, as core's tables are). */
export function llavaRemapTable(parts: LlavaParts, vision: LlavaVisionEncoderFunctions, layout: LlavaLayout): RemapTable {
  const prefixes = PREFIXES[layout];
  const m = parts.modality;
  return {
    ...concatTables(
      prefixTable(vision.hfVisionRemapTable(parts.family, ''), { external: prefixes.vision, internal: `${m}.encoder.` }),
      prefixTable(PROJECTOR_TABLE, { external: prefixes.projector, internal: `${m}.projector.` }),
      languageModelTable(layout),
    ),
    unmatched: 'error',
  };
}

/** The layout a checkpoint's tensor names are in, or an error naming what was found. */
export function detectLlavaLayout(names: readonly string[], source: string): LlavaLayout {
  const found = LLAVA_LAYOUTS.filter((layout) => names.some((n) => n.startsWith(PREFIXES[layout].projector)));
  if (found.length === 1) return found[0]!;
  throw new Error(
    `LLaVA import: ${source} ` +
      (found.length
        ? 'mixes the key layouts of transformers before and after 4.52; re-save it with one transformers version'
        : `has no ${PREFIXES['transformers<4.52'].projector}* or ${PREFIXES['transformers>=4.52'].projector}* tensors ` +
          `(first keys: ${names.slice(0, 4).join(', ')}); it is not a LlavaForConditionalGeneration checkpoint`),
  );
}
