// A seeded generator of small RGB images of shapes, with full scene descriptions, classification labels and
// question/answer pairs (PNG output lives in the './png' entry).
export { SHAPE_KINDS, PLURALS, isShapeKind, insideShape, type ShapeKind } from './kinds';
export { COLOR_NAMES, PALETTE, isColorName, type ColorName } from './palette';
export { resolveShapesOptions, type ShapesOptions, type ResolvedShapesOptions, type Range, type ImageDims } from './options';
export {
  fineDetailOptions,
  sizeKey,
  FINE_DETAIL_SEEN_SIZES,
  FINE_DETAIL_UNSEEN_SIZES,
  FINE_DETAIL_SHAPE_SIZE,
  FINE_DETAIL_TYPES,
  type FineDetailOptions,
} from './fine-detail';
export {
  GENERATION_IMAGE_SIZE,
  GENERATION_PAIRS,
  HELD_OUT_PAIRS,
  SEEN_PAIRS,
  generationOptions,
  generationSample,
  generationSamples,
  isHeldOutPair,
  promptFor,
  type GenerationSample,
  type KindColor,
} from './generation-set';
export { generateScene, sizeBand, SIZE_BAND, type Scene, type SceneShape, type SizeClass, type Box } from './scene';
export { renderScene } from './render';
export {
  QUESTION_TYPES,
  ANSWERS,
  WORDS,
  LEFT_OF_MARGIN,
  questionWords,
  questionsFor,
  sampleQuestion,
  type Question,
  type QuestionType,
} from './questions';
export { WordVocabulary, type WordVocabularyOptions } from './vocabulary';
export { SPLITS, SPLIT_NAMES, sampleId, splitOf, type SplitName, type SplitRange } from './splits';
export { SeededRandom, deriveSeed, mix32 } from './random';
export {
  ShapesDataset,
  type ShapeSample,
  type ClassificationSample,
  type QuestionSample,
  type QuestionOptions,
} from './dataset';
export { drawText, textWidth, wrapText, GLYPH_WIDTH, GLYPH_HEIGHT, GLYPH_ADVANCE } from './font';
export { imageGrid, type GridTile, type GridOptions } from './grid';
