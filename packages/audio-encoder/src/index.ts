// @chimera/audio-encoder: sound in, from WAV bytes to encoder features and the audio modality plugin.

// Audio input and the log-mel frontend
export { AudioInputError, type AudioInputErrorCode } from './audio/errors';
export type { AudioClip, MultiChannelAudio, WavInfo } from './audio/types';
export {
  decodeWav,
  decodeWavChannels,
  readWavInfo,
  mixdown,
  DEFAULT_MIN_SAMPLE_RATE,
  DEFAULT_MAX_SAMPLE_RATE,
  DEFAULT_MAX_CHANNELS,
  DEFAULT_MAX_DECODE_BYTES,
  type AudioLimits,
  type WavDecodeOptions,
  type DecodedWav,
  type DecodedWavChannels,
} from './audio/wav';
export { audioFromPcm, loadAudio, type PcmOptions, type LoadAudioOptions } from './audio/pcm';
export { resample, type ResampleOptions } from './audio/resample';
export { hzToMel, melToHz, melFilterBank, type MelFilterBankOptions } from './frontend/mel';
export {
  logMelSpectrogram,
  whisperLogMelFrames,
  framesFor,
  dftBasis,
  WhisperFeatureExtractor,
  WHISPER_SAMPLE_RATE,
  WHISPER_N_FFT,
  WHISPER_HOP_LENGTH,
  WHISPER_CHUNK_SAMPLES,
  type ClipInput,
  type LogMelOptions,
  type LogMelFeatures,
  type LogMelFrames,
} from './frontend/log-mel';

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
