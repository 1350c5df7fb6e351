// @chimera/audio-encoder: sound in, from WAV bytes to encoder features and the audio modality plugin.

// Encoder, windows and the modality plugin
export {
  whisperEncoderConfig,
  whisperTiny,
  whisperBase,
  whisperSmall,
  tinyWhisperEncoder,
  maxInputFrames,
  encoderPositions,
  validateWhisperEncoderConfig,
  type WhisperEncoderConfig,
  type WhisperEncoderConfigInput,
} from './encoder/config';
export { whisperSinusoids, whisperSinusoidTensor } from './encoder/positions';
export { WhisperEncoderLayer } from './encoder/block';
export { WhisperEncoder, type EncoderTap, type WhisperEncoderForwardOptions, type WhisperEncoderOutput } from './encoder/encoder';
export { WindowEncoder, type WindowEncoderOptions } from './encoder/window-encoder';
export {
  WHISPER_ENCODER_TABLE,
  exportHFWhisperEncoder,
  hfWhisperRemapTable,
  hfWhisperStateDict,
  loadHFWhisperEncoder,
  whisperConfigOf,
  whisperEncoderConfigFromHF,
  whisperEncoderConfigToHF,
  type ExportHFWhisperEncoderOptions,
  type LoadHFWhisperEncoderOptions,
} from './encoder/hf-import';
export {
  AUDIO_FLAMINGO_WINDOWS,
  FRAMES_PER_SECOND,
  cutWindows,
  maxWindowedFrames,
  planWindows,
  validateWindows,
  windowsFromSeconds,
  type WindowOptions,
  type WindowPlan,
} from './windows';
export {
  audioModality,
  type AudioFrontend,
  type AudioInput,
  type AudioModality,
  type AudioModalityOptions,
  type LogMelInput,
  type PcmInput,
  type PreparedAudio,
} from './modality';
