// Weights: safetensors read/write, sharded checkpoints, key-remap tables and PyTorch layouts, module checkpoints.
export {
  saveSafetensors,
  loadSafetensors,
  encodeSafetensors,
  decodeSafetensors,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  chooseFileDtype,
  fileByteLength,
  type SafetensorsContents,
  type SaveSafetensorsOptions,
  type LoadSafetensorsOptions,
} from './safetensors';
export { writeFileAtomic, withAtomicFile } from './atomic';
export { commitDirectory, recoverDirectory, readDirectoryConsistently, type CommitDirectoryOptions } from './directory-commit';
export { checkpointTensorNames, checkpointTensorShapes, readCheckpointConfig, saveHFModelFolder } from './hf-model-folder';
export { WriteError, describeWriteFailure } from './write-errors';
export { SafetensorsError, MAX_HEADER_BYTES, type SafetensorsHeader, type TensorEntry } from './header';
export {
  SAFETENSORS_DTYPES,
  DTYPE_BYTES,
  DECODED_TF_DTYPE,
  f16BitsToNumber,
  numberToF16Bits,
  bf16BitsToNumber,
  numberToBf16Bits,
  type SafetensorsDtype,
  type WritableDtype,
} from './dtypes';
export {
  saveShardedSafetensors,
  writeShardedSafetensors,
  isCheckpointFile,
  loadShardedSafetensors,
  readSafetensorsIndex,
  planShards,
  indexFileName,
  DEFAULT_MAX_SHARD_BYTES,
  type SaveShardedOptions,
  type LoadShardedOptions,
  type ShardedSaveResult,
  type SafetensorsIndex,
} from './sharded';
export {
  remapStateDict,
  importStateDict,
  exportStateDict,
  planRemap,
  prefixTable,
  concatTables,
  layoutPermutation,
  linearFromTorch,
  linearToTorch,
  conv2dFromTorch,
  conv2dToTorch,
  conv1dFromTorch,
  conv1dToTorch,
  convTranspose2dFromTorch,
  convTranspose2dToTorch,
  type Layout,
  type RemapRule,
  type RemapTable,
  type RemapDirection,
  type RemapEntry,
  type RemapPlan,
  type RemapOptions,
} from './remap';
export {
  saveCheckpoint,
  loadCheckpoint,
  loadTrainableCheckpoint,
  checkpointStateDict,
  CHECKPOINT_KIND_KEY,
  type SaveCheckpointOptions,
  type LoadCheckpointOptions,
} from './checkpoint';
