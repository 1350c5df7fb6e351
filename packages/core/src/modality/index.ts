export {
  MODALITY_PATHS,
  ModalityModule,
  defaultPath,
  gridSize,
  requirePath,
  supportedPaths,
  validateModality,
  type ContinuousInput,
  type ContinuousOutput,
  type DiscreteCodec,
  type EncodeOptions,
  type EncodedFeatures,
  type ItemFeatures,
  type MediaGrid,
  type Modality,
  type ModalityPath,
} from './contract';
export { ModalityRegistry, unknownModalityError } from './registry';
export {
  MEDIA_KINDS,
  isMediaSegment,
  isTokenSample,
  mediaSegment,
  pathForKind,
  type MediaKind,
  type MediaSegment,
  type Sample,
  type Segment,
  type TextSegment,
  type TokenSample,
} from './segments';
export { expandPlaceholders, type PlaceholderMode } from './placeholders';
export { rowPositions, type PositionMode, type PositionSpan, type RowPositions } from './positions';
export {
  TOKEN_KIND,
  layoutSequences,
  type PackOptions,
  type PlacedMedia,
  type SequenceLayout,
  type SpliceSource,
} from './layout';
export { layoutTargets, type HeadTargetArrays, type LatentTargetArrays, type LayoutTargets } from './targets';
export { MASKED_BIAS, attentionBiasValues, canAttend } from './attention-bias';
export {
  crossAttentionLayout,
  crossAttentionMask,
  gatherMediaSlots,
  type CrossAttentionLayout,
  type CrossAttentionMask,
  type CrossAttentionMaskOptions,
} from './cross-attention-mask';
export { spliceEmbeddings, type SpliceInputs } from './splice';
export { SequenceBatch, type HeadTargets, type LatentTargets, type SequenceTargets } from './sequence-batch';
export { packSequences } from './packer';
