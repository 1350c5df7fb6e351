// Image input: decoding, resizing, cropping/padding, normalization and the preprocessing pipeline.
export type { RgbImage, RgbColor } from './image/types';
export { ImageInputError, type ImageInputErrorCode } from './image/errors';
export { detectImageFormat, readImageHeader, type ImageFormat, type ImageHeader } from './image/header';
export {
  decodeImage,
  decodeImageSync,
  DEFAULT_MAX_PIXELS,
  DEFAULT_MAX_DECODE_PIXELS,
  DEFAULT_MAX_DECODE_BYTES,
  type DecodeOptions,
} from './image/decode';
export { imageFromPixels, solidImage, assertRgbImage, DEFAULT_BACKGROUND, type AlphaBackground } from './image/pixels';
export { resizeImage, type ResizeFilter } from './image/resize';
export { shortestEdgeSize, fitWithinPixels, type ImageSize } from './image/sizing';
export { cropImage, centerCrop, padToSquare } from './image/crop-pad';
export {
  NORMALIZE_PRESETS,
  resolveNormalization,
  meanColor,
  imageToTensor,
  imagesToTensor,
  type NormalizeStats,
  type NormalizePresetName,
  type Normalization,
} from './image/normalize';
export {
  ImageProcessor,
  clipProcessor,
  siglipProcessor,
  llavaProcessor,
  type ImageInput,
  type ResizeSpec,
  type ImageProcessorOptions,
  type PresetProcessorOptions,
} from './image/processor';

// ViT towers (CLIP / SigLIP): config presets, patch embedding, positions, blocks, the tower with feature taps,
// HF import/export.
export {
  vitConfig,
  validateViTConfig,
  familyDefaults,
  trainedGridSize,
  clipVitB16,
  clipVitB32,
  clipVitL14,
  clipVitL14_336,
  siglipBase16,
  siglipSo400m14,
  tinyViT,
  type ViTConfig,
  type ViTConfigInput,
  type ViTFamily,
  type ViTPositions,
} from './vit/config';
export { PatchEmbedding, patchify, type PatchGrid } from './vit/patch-embedding';
export { LearnedPositions, Rope2dPositions, bicubicResizeMatrix, resizeGridBicubic, gridPositions } from './vit/positions';
export { ViTBlock } from './vit/block';
export {
  VisionTransformer,
  type FeatureLayer,
  type FeatureSelect,
  type ViTForwardOptions,
  type ViTOutput,
  type ViTFeaturesOptions,
  type ViTFeatures,
} from './vit/tower';
export {
  loadHFVisionTower,
  exportHFVisionTower,
  hfVisionStateDict,
  hfVisionRemapTable,
  vitConfigFromHF,
  vitConfigToHF,
  visionConfigOf,
  CLIP_VISION_TABLE,
  SIGLIP_VISION_TABLE,
  type LoadHFVisionTowerOptions,
  type ExportHFVisionTowerOptions,
} from './vit/hf-import';

// Patches and dynamic resolution: Fuyu raw patches with row breaks, Qwen2-VL native-resolution sizing,
// InternVL/NVLM tiling, 2x2 merge and pixel shuffle, token positions; and the modality plugin.
export {
  RawPatchEmbedding,
  extractPatches,
  padToPatchMultiple,
  rawPatchGrid,
  type RawPatchEmbeddingOptions,
  type RawPatchOutput,
} from './patches/raw-patches';
export {
  smartResize,
  nativeGeometry,
  QWEN2VL_PATCH_SIZE,
  QWEN2VL_MERGE_SIZE,
  QWEN2VL_MIN_PIXELS,
  QWEN2VL_MAX_PIXELS,
  MAX_ASPECT_RATIO,
  type NativeResolutionOptions,
  type NativeGeometry,
  type OversizePolicy,
} from './patches/native-grid';
export {
  candidateTileGrids,
  chooseTileGrid,
  planTiling,
  cutTiles,
  type TilingOptions,
  type TilingPlan,
  type TileGrid,
  type ThumbnailPlacement,
} from './patches/tiling';
export {
  mergePatches,
  mergedGridShape,
  pixelShuffle,
  pixelShuffleGridShape,
  type MergeOptions,
  type PixelShuffleOptions,
  type GridShape,
  type OddGridPolicy,
} from './patches/merge';
export { tokenPositions, rotaryPositions2d, gridWithRowBreaks, type TokenPositions } from './patches/positions';
export {
  visionModality,
  FUYU_PATCH_SIZE,
  FUYU_MAX_PIXELS,
  type VisionMode,
  type VisionModality,
  type VisionModalityOptions,
  type ViTModeOptions,
  type NativeModeOptions,
  type TilesModeOptions,
  type FuyuModeOptions,
  type MergeSpec,
  type MergeSetting,
  type InputOptions,
  type PreparedImage,
} from './modality';
