export {
  LogitsProcessorList,
  TemperatureProcessor,
  TopKProcessor,
  TopPProcessor,
  MinPProcessor,
  RepetitionPenaltyProcessor,
  SuppressTokensProcessor,
  AllowTokensProcessor,
  allowedTokenRange,
  buildLogitsProcessors,
  checkLogits,
  type LogitsProcessor,
  type LogitsProcessorOptions,
  type TokenRows,
} from './logits-processors';
export { classifierFreeGuidance, classifierFreeGuidanceFromBatch, type GuidanceBatchLayout } from './guidance';
export { greedyTokens, greedyTokensSync, sampleTokens, sampleTokensSync, argmaxPerRow, samplePerRow } from './samplers';
export {
  MaxNewTokensCriterion,
  MaxLengthCriterion,
  StopTokensCriterion,
  StopSequencesCriterion,
  AnyOfCriteria,
  FinishedRows,
  stopWhenAny,
  buildStoppingCriteria,
  generatedCount,
  type StoppingCriterion,
  type StoppingState,
  type StoppingOptions,
} from './stopping';
export { KVCache, type KVCacheConfig, type KVCacheUser, type KeyValues } from './kv-cache';
