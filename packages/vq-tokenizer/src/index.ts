// @chimera/vq-tokenizer: discrete image codes in and out (VQ-VAE / VQGAN in the LlamaGen / Janus VQ layout).
export { VQModel, type VQModelOptions, type VQForward } from './model/vq-model';
export { DEFAULT_VQ_CONFIG, VQ16_CONFIG, SHAPES_VQ_CONFIG, resolveVQConfig, downsampleFactor, type VQConfig } from './model/config';
export { VQEncoder, VQDecoder, ConvLevel } from './model/coders';
export { ResnetBlock, AttnBlock, Downsample, Upsample, swish, type Norms } from './model/blocks';
export {
  VectorQuantizer,
  entropyLoss,
  normalize,
  checkCodes,
  type VectorQuantizerOptions,
  type CodebookUpdate,
  type QuantizeLosses,
  type QuantizeResult,
} from './codebook/vector-quantizer';
export { trainVQ, vqTrainingLoss, evaluateVQ, type TrainVQOptions, type VQLossWeights, type VQStepHealth, type VQStepLoss, type VQEvaluation } from './training/recipe';
export { vqImageModality, type VQImageModality, type VQImageModalityOptions, type VQImageItem, type RgbPixels } from './modality/image-modality';
export { importLlamaGenVQ, exportLlamaGenVQ, loadLlamaGenVQ, llamaGenVQTable, JANUS_VQ_PREFIX, type LlamaGenImportOptions } from './checkpoint/llamagen';
