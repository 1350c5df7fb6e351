// A seeded generator of 16 kHz sound clips with a question and its answer each: tones, sweeps, beeps, noise and
// spoken digits (espeak-ng), for Chimera's audio examples.
export {
  QUESTION_TYPES,
  ANSWERS,
  ANSWERS_BY_TYPE,
  WORDS,
  PITCHES,
  WAVEFORMS,
  LOUDNESS,
  DIRECTIONS,
  BEEP_COUNTS,
  ORDER_ANSWERS,
  DIGITS,
  questionText,
  questionWords,
  type Question,
  type QuestionType,
  type Pitch,
  type Waveform,
  type Loudness,
  type Direction,
} from './questions';
export { SoundVocabulary, type SoundVocabularyOptions } from './vocabulary';
export { SAMPLE_RATE, rms, dbToAmplitude } from './synth';
export { PITCH_BANDS, LOUDNESS_BANDS, DEFAULT_LEVEL, generateScene, renderScene, type ClipScene, type SoundEvent, type SceneSettings } from './scene';
export {
  VOICES,
  SPEEDS,
  PITCHES_ESPEAK,
  voiceName,
  speak,
  espeakAvailable,
  defaultSpeechCache,
  warmSpeechCache,
  type Voice,
  type Utterance,
} from './speech';
export { SoundsDataset, questionOf, type SoundsOptions, type ResolvedSoundsOptions, type SoundSample } from './dataset';
export { spectrogramImage, type SpectrogramImageOptions } from './spectrogram';
