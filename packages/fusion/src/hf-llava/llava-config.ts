/**
 * config.json of HF's LlavaForConditionalGeneration (transformers' LlavaConfig): `model_type: "llava"`, the tower's
 * `vision_config`, the LLM's `text_config`, and the fields that say how they are joined. Written from a composed
 * model, and checked against one when a checkpoint comes back (PyTorch keeps the config; a changed field there
 * that the tensor shapes cannot reveal, such as an epsilon or the feature layer, must not load silently).
 */
import { configFromHF, configToHF, type LlamaConfig } from '@chimera/llm';
import type { ComposedModel } from '../composed-model';
import type { LlavaParts } from './llava-parts';

type Json = Record<string, unknown>;

/** LlavaConfig as JSON for the model's parts. */
export function llavaConfigJson(model: ComposedModel, parts: LlavaParts): Record<string, unknown> {
  const text = configToHF(model.llm.config);
  return {
    architectures: ['LlavaForConditionalGeneration'],
    model_type: 'llava',
    vision_config: parts.visionConfig,
    text_config: text,
    image_token_index: parts.imageTokenIndex,
    image_seq_length: parts.imageSeqLength,
    projector_hidden_act: 'gelu', // MLPProjector's exact (erf) GELU, HF's ACT2FN['gelu']
    multimodal_projector_bias: parts.projectorBias,
    vision_feature_layer: parts.featureLayers.length === 1 ? parts.featureLayers[0] : parts.featureLayers,
    vision_feature_select_strategy: parts.select,
    tie_word_embeddings: model.llm.config.tieWordEmbeddings,
    torch_dtype: 'float32',
  };
}

/** Vision config keys that change the tower's arithmetic (the rest are bookkeeping). */
const VISION_MATH_KEYS = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_channels', 'image_size', 'patch_size', 'hidden_act', 'layer_norm_eps'];
/** LlamaConfig fields that change the LLM's arithmetic (token ids do not). */
const TEXT_MATH_FIELDS: (keyof LlamaConfig)[] = [
  'modelType', 'vocabSize', 'hiddenSize', 'numLayers', 'numHeads', 'numKvHeads', 'intermediateSize', 'headDim', 'ropeTheta',
  'ropeScaling', 'mropeSections', 'rmsNormEps', 'tieWordEmbeddings', 'qkNorm', 'attentionBias', 'attentionOutBias', 'mlpBias',
];
/** Top-level LlavaConfig fields that change the model, with transformers' defaults for a file that leaves them out. */
const TOP_DEFAULTS: Json = {
  image_token_index: 32000,
  projector_hidden_act: 'gelu',
  multimodal_projector_bias: true,
  vision_feature_layer: -2,
  vision_feature_select_strategy: 'default',
};

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Every way `found` (a checkpoint's config.json) disagrees with what the model would export; [] when it fits.
 * Vision keys a file leaves out are not compared (their HF defaults depend on the tower family).
 */
export function llavaConfigDifferences(expected: Json, found: unknown, source: string): string[] {
  if (found === null || typeof found !== 'object' || Array.isArray(found)) return [`${source} does not hold a JSON object`];
  const file = found as Json;
  if (file.model_type !== 'llava') return [`model_type is ${JSON.stringify(file.model_type)}, expected "llava"`];
  const out: string[] = [];
  for (const [key, fallback] of Object.entries(TOP_DEFAULTS)) {
    const value = Object.hasOwn(file, key) ? file[key] : fallback;
    if (!same(value, expected[key])) out.push(`${key}: the file has ${JSON.stringify(value)}, the model ${JSON.stringify(expected[key])}`);
  }
  const vision = (file.vision_config ?? {}) as Json;
  const ownVision = expected.vision_config as Json;
  for (const key of VISION_MATH_KEYS) {
    if (Object.hasOwn(vision, key) && !same(vision[key], ownVision[key])) {
      out.push(`vision_config.${key}: the file has ${JSON.stringify(vision[key])}, the model ${JSON.stringify(ownVision[key])}`);
    }
  }
  let text: LlamaConfig;
  try {
    text = configFromHF(file.text_config, `${source} text_config`);
  } catch (error) {
    return [...out, (error as Error).message];
  }
  const ownText = configFromHF(expected.text_config, 'the model');
  for (const field of TEXT_MATH_FIELDS) {
    if (!same(text[field], ownText[field])) {
      out.push(`text_config (${String(field)}): the file has ${JSON.stringify(text[field])}, the model ${JSON.stringify(ownText[field])}`);
    }
  }
  return out;
}
