export { AdamW, defaultWeightDecayFilter, type AdamWOptions, type AdamWState, type NamedVariables, type WeightDecayFilter } from './adamw';
export { clipByGlobalNorm, globalNorm, type ClipResult } from './clip';
export { constantSchedule, warmupCosineSchedule, type LearningRateSchedule, type ConstantScheduleOptions, type WarmupCosineOptions } from './schedules';
export { GradientAccumulator, accumulateGradients, type AccumulatedGradients } from './accumulate';
export { MetricsLog, readMetrics, type StepMetrics } from './metrics';
export { ProgressDisplay, progressWanted, type ProgressOptions, type ProgressFields, type ProgressStream } from './progress';
export {
  saveTrainingCheckpoint,
  loadTrainingCheckpoint,
  readTrainingCheckpoint,
  readTrainerState,
  CheckpointDamagedError,
  type ReadCheckpoint,
  checkpointTensors,
  checkpointDirName,
  listCheckpoints,
  latestCheckpoint,
  pruneCheckpoints,
  CHECKPOINT_FILES,
  type TrainerState,
  type CheckpointParts,
} from './checkpoint-state';
export { Trainer, TrainingDivergedError, type TrainerOptions, type StepContext, type CheckpointOptions, type FitResult } from './trainer';
