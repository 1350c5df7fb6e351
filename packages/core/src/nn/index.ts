export { Module, ModuleList, globToRegExp, matchName, type NamePattern, type LoadStateDictOptions, type LoadStateDictResult, type ParameterInfo } from './module';
export * as init from './init';
export { Linear, type LinearOptions } from './linear';
export { LayerNorm, RMSNorm, type NormOptions } from './norm';
export { gelu, geluTanh, silu, quickGelu, relu, getActivation, ACTIVATION_NAMES, type ActivationName, type ActivationFn } from './activations';
export { Embedding, type EmbeddingOptions, type EmbeddingResizeOptions } from './embedding';
export { Dropout } from './dropout';
export { MLP, GatedMLP, type MLPOptions, type GatedMLPOptions } from './mlp';
export { Conv2d, type Conv2dOptions, type Conv2dPadding } from './conv';
export { Conv1d, type Conv1dOptions, type Conv1dPadding } from './conv1d';
export { ConvTranspose2d, type ConvTranspose2dOptions } from './conv-transpose';
export { GroupNorm, type GroupNormOptions } from './group-norm';
export { Upsample, interpolate, type UpsampleOptions, type UpsampleMode } from './upsample';
export { AvgPool1d, AvgPool2d, type AvgPool1dOptions, type AvgPool2dOptions } from './pooling';
export { LoRAAdapter, applyLoRA, mergeLoRA, unmergeLoRA, loraLayers, loraStateDict, type LoRAOptions } from './lora';
export {
  RotaryEmbedding,
  applyRotary,
  rotateHalf,
  sequentialPositions,
  ropeInverseFrequencies,
  ropeScalingFromConfig,
  type RotaryEmbeddingOptions,
  type RotaryTables,
  type RopeScaling,
  type LinearRopeScaling,
  type Llama3RopeScaling,
  type RopeLadder,
} from './rope';
export { Attention, causalBias, MASK_VALUE, type AttentionOptions, type AttentionForwardOptions, type QKNormKind } from './attention';
export { gatedPrefixAttention, attendHeads, type AttentionAdapter, type AttendHeadsOptions } from './attention';
