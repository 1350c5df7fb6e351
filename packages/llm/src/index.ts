// The model: config, CausalLM with its fusion extension points, and the causal-LM loss.
export {
  llamaConfig,
  tinyLlama,
  validateConfig,
  configFromHF,
  configToHF,
  headDimOf,
  eosTokenIds,
  type LlamaConfig,
  type LlamaConfigInput,
  type LlamaModelType,
} from './config';
export { CausalLM, type CausalLMForwardOptions, type CausalLMOutput } from './model/causal-lm';
export { LlamaModel, type DecoderOutput } from './model/decoder';
export { DecoderLayer, type LayerRoutingInfo, type LayerRun } from './model/decoder-layer';
export { LMHead } from './model/lm-head';
export { PrefixAdapter } from './model/prefix-adapter';
export { ModalityExperts, ExpertParts, TokenRouting } from './model/routing';
export { defaultPositions, paddingBias, type CausalLMInputs } from './model/inputs';
export {
  isExtensionParameter,
  resolveLayers,
  type BlockContext,
  type InsertedBlock,
  type InsertBlockOptions,
  type InsertedBlockInfo,
  type LayerSelection,
  type OutputHead,
  type PrefixAdapterOptions,
  type RouteByModalityOptions,
  type RoutedPart,
  type RoutingMode,
} from './model/extension-points';
export { causalLMLoss, shiftedTargets, zLoss, type CausalLMLossOptions } from './loss';

// Text tokenizers: byte-level and HF tokenizer.json, chat templates, special-token registry, streaming decode.
export * from './tokenizers/index';

// Generation: generate / streamGenerate (left-padded batches, KV cache, samplers, stops, streaming).
export * from './generation/index';

// HF checkpoints: the Llama/Qwen2/Qwen3/SmolLM key-remap table, loadPretrained / loadPretrainedWeights, savePretrained.
export * from './checkpoint/index';
