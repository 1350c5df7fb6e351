/**
 * @chimera-examples/shapes-vqa: what the shapes VQA examples (llava, fuyu, qwen2-vl, nvlm-h) share, so none of
 * them copies it: the vocabulary, question examples and held-out sets, the composed-model sample of a question,
 * multi-turn training conversations, exact-match scoring (per type, shape count and image size), the text-only
 * baseline, the answers picture, and dense patch-label pretraining of a ViT tower for any view geometry.
 */
export { VOCABULARY, PAD, BOS, EOS, IMAGE, VOCAB_SIZE, encodeWords, decodeWords } from './vocabulary';
export { exampleAt, heldOutExamples, trainingExamples, type Example } from './examples';
export { questionSample, type SampleImage, type QuestionAnswer } from './samples';
export { conversationTurns, conversationSample, type ConversationOptions } from './conversations';
export {
  answerExamples,
  exactMatch,
  scoreExamples,
  accuracies,
  percent,
  describeScore,
  type Score,
  type ScoreBreakdown,
  type ExactMatch,
} from './evaluate';
export { trainTextBaseline, scoreTextOnly, type TextBaselineOptions, type TextBaselineResult } from './baseline';
export { answerTiles, answerGrid, writeAnswerGrid, comparisonTable, sizeTable, type AnswerGridOptions } from './report';
export { imageViews, viewPatchLabels, labelClasses, LABEL_SETS, SIZE_CLASSES, type View, type ViewKind, type PatchLabels } from './views';
export {
  pretrainVisionTower,
  patchAccuracy,
  patchLabelLoss,
  viewBatch,
  PatchLabeler,
  DEFAULT_LABEL_WEIGHTS,
  DEFAULT_BACKGROUND_WEIGHT,
  type LabelWeights,
  type ViewGroup,
  type ViewSource,
  type PatchAccuracy,
  type VisionPretrainingOptions,
  type VisionPretrainingResult,
} from './vision-pretraining';
