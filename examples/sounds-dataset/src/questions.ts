// Question types, their one template each, their closed answer sets and the word list of the whole dataset.
// Every clip is made for one question type, with its answer drawn first (uniformly), so the answers of each
// type are balanced and a text-only model can do no better than guessing among them.

export const QUESTION_TYPES = ['pitch', 'waveform', 'loudness', 'sweep', 'beeps', 'order', 'digit'] as const;
export type QuestionType = (typeof QUESTION_TYPES)[number];

export const PITCHES = ['low', 'middle', 'high'] as const;
export type Pitch = (typeof PITCHES)[number];
export const WAVEFORMS = ['sine', 'square', 'sawtooth', 'noise'] as const;
export type Waveform = (typeof WAVEFORMS)[number];
export const LOUDNESS = ['quiet', 'medium', 'loud'] as const;
export type Loudness = (typeof LOUDNESS)[number];
export const DIRECTIONS = ['rising', 'falling'] as const;
export type Direction = (typeof DIRECTIONS)[number];
export const BEEP_COUNTS = ['1', '2', '3', '4', '5'] as const;
export const ORDER_ANSWERS = ['low', 'high'] as const;
export const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] as const;

/** The answers each question type can have, in a fixed order (a classifier head's classes). */
export const ANSWERS_BY_TYPE: Readonly<Record<QuestionType, readonly string[]>> = {
  pitch: PITCHES,
  waveform: WAVEFORMS,
  loudness: LOUDNESS,
  sweep: DIRECTIONS,
  beeps: BEEP_COUNTS,
  order: ORDER_ANSWERS,
  digit: DIGITS,
};

/** Every answer of every type, each once. */
export const ANSWERS: readonly string[] = [...new Set(QUESTION_TYPES.flatMap((type) => ANSWERS_BY_TYPE[type]))];

export interface Question {
  type: QuestionType;
  /** Lower case, words separated by single spaces, ending in '?'. */
  text: string;
  /** One entry of ANSWERS_BY_TYPE[type]. */
  answer: string;
}

/** The question text of a type; `order` names its two tones in either order (`lowFirst` in the text). */
export function questionText(type: QuestionType, options: { lowMentionedFirst?: boolean } = {}): string {
  switch (type) {
    case 'pitch':
      return 'what is the pitch of the tone?';
    case 'waveform':
      return 'what kind of wave is the sound?';
    case 'loudness':
      return 'how loud is the sound?';
    case 'sweep':
      return 'is the sweep rising or falling?';
    case 'beeps':
      return 'how many beeps are there?';
    case 'order':
      return options.lowMentionedFirst === false
        ? 'which tone came first the high one or the low one?'
        : 'which tone came first the low one or the high one?';
    case 'digit':
      return 'which digit is spoken?';
  }
}

/** Splits a question or answer into words ('?' becomes its own word). */
export function questionWords(text: string): string[] {
  return text.replace(/\?/g, ' ?').trim().split(/\s+/);
}

/** Every word of every question and answer, sorted: a closed word-level vocabulary. */
export const WORDS: readonly string[] = [
  ...new Set([
    ...QUESTION_TYPES.flatMap((type) => [...questionWords(questionText(type, { lowMentionedFirst: true })), ...questionWords(questionText(type, { lowMentionedFirst: false }))]),
    ...ANSWERS,
  ]),
].sort();
