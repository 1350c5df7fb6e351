// compose() and the composed model: forward / loss / generate, freezing presets, summary, checkpoints.
export { compose, BACKBONE_NAME, type ComposeOptions } from './compose';
export {
  ComposedModel,
  ModalityParts,
  type ComposedOutput,
  type ComposedGenerateOptions,
  type ComposedModelParts,
} from './composed-model';
export {
  isSampleList,
  isTokenSample,
  type ComposedSample,
  type SamplePart,
  type TextPart,
  type MediaPart,
  type TokenSample,
} from './samples';
export { type ComposedPackOptions } from './packing';

// Freezing policy, parameter groups and the summary.
export {
  TRAINABLE_PRESETS,
  isTrainablePreset,
  resolveTrainable,
  type TrainablePreset,
  type TrainableSelection,
  type ParameterPattern,
  type PresetDefinition,
} from './freezing';
export { ParameterGroups, GROUP_KINDS, underPrefix, type GroupKind, type ParameterGroup, type ParameterGroupSpec } from './parameter-groups';
export { summarize, type ModelSummary, type GroupSummary } from './summary';
export { saveComposed, loadComposed, TRAINABLE_NAMES_KEY, type SaveComposedOptions, type LoadComposedOptions } from './checkpoint';

// HF LlavaForConditionalGeneration export and import (the hand-over to PyTorch; docs/scaling.md).
export {
  exportLlava,
  loadLlavaWeights,
  type ExportLlavaOptions,
  type ExportLlavaResult,
  type LoadLlavaOptions,
  type LoadLlavaResult,
} from './hf-llava/llava-checkpoint';
export { llavaRemapTable, LLAVA_LAYOUTS, type LlavaLayout } from './hf-llava/llava-keys';
export { llavaParts, type LlavaParts, type LlavaVisionEncoderFunctions } from './hf-llava/llava-parts';
export { llavaConfigJson } from './hf-llava/llava-config';

// The strategy contract and the strategies.
export {
  type FusionStrategy,
  type AttachContext,
  type SegmentContext,
  type StrategyItem,
  type ContributionInput,
  type Contribution,
  type StrategyPackOptions,
  type LossTermInput,
} from './strategies/strategy';
export { earlyFusion, EarlyFusion, type EarlyFusionOptions } from './strategies/early-fusion';
export { gatedCrossAttention, GatedCrossAttentionFusion, type GatedCrossAttentionFusionOptions } from './strategies/cross-attention';
export { nvlmHybrid, NvlmHybridFusion, type NvlmHybridOptions, type ItemViews } from './strategies/hybrid';
export { tileCrossAttentionMask, type TileMaskOptions, type TileOwner } from './strategies/hybrid-mask';
export {
  tokenizedFusion,
  TokenizedFusion,
  type TokenizedFusionOptions,
  type GenerateImageOptions,
  type GeneratedImages,
} from './strategies/tokenized';

// Building blocks: projectors, resamplers, the gated cross-attention block.
export { createProjector, type Projector, type ProjectorSpec } from './projectors/projector';
export { LinearProjector } from './projectors/linear';
export { MLPProjector } from './projectors/mlp';
export { createResampler, resampleItems, type Resampler, type ResamplerSpec } from './resamplers/resampler';
export { PerceiverResampler, type PerceiverOptions } from './resamplers/perceiver';
export { QFormerResampler, type QFormerOptions } from './resamplers/qformer';
export {
  GatedCrossAttentionBlock,
  type GatedCrossAttentionOptions,
  type CrossAttentionContext,
} from './blocks/gated-cross-attention';

// Generating discrete codes (image tokens) after a prompt with the KV cache: shared by tokenized (Chameleon) and
// decoupled (Janus) fusion.
export {
  generateCodes,
  type CodeGenerationOptions,
  type CodeGenerationHooks,
  type CodePrompt,
} from './generation/code-generation';
