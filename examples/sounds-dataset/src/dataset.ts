// The dataset: random access to seeded clips of a split with one question each. Every method is a pure function
// of (options, split, index) (spoken digits come from espeak-ng through a file cache, itself a pure function of
// the utterance), so a training loop's batches can be a pure function of the step.
import { SPLIT_NAMES, SeededRandom, deriveSeed, sampleId, type SplitName } from '@chimera-examples/shapes-dataset';
import { QUESTION_TYPES, questionText, type Question, type QuestionType } from './questions';
import { generateScene, renderScene, type ClipScene } from './scene';
import { VOICES, defaultSpeechCache, type Voice } from './speech';
import { SAMPLE_RATE } from './synth';

export interface SoundsOptions {
  /** Clip length range in seconds (default 2..6). */
  duration?: { min: number; max: number };
  /** Question types to draw from (default: all of QUESTION_TYPES). */
  types?: readonly QuestionType[];
  /** Voices of the spoken digits per split (default VOICES: the test split's speakers are never trained on). */
  voices?: Partial<Record<SplitName, readonly Voice[]>>;
  /** Folder of the espeak-ng WAV cache (default runs/.cache/sounds-dataset at the repo root). */
  speechCache?: string;
  /** Salts every sample: two datasets with different seeds differ everywhere (default 0). */
  seed?: number;
}

export interface ResolvedSoundsOptions {
  duration: { min: number; max: number };
  types: readonly QuestionType[];
  voices: Readonly<Record<SplitName, readonly Voice[]>>;
  speechCache: string;
  seed: number;
}

export interface SoundSample {
  split: SplitName;
  index: number;
  /** The sample's 32-bit id (shapes-dataset's splits: disjoint id ranges). */
  id: number;
  scene: ClipScene;
  /** 16 kHz mono float PCM in [-1, 1]. */
  audio: Float32Array;
  sampleRate: number;
  question: Question;
}

export class SoundsDataset {
  readonly options: ResolvedSoundsOptions;

  constructor(options: SoundsOptions = {}) {
    const resolved: ResolvedSoundsOptions = {
      duration: { ...(options.duration ?? { min: 2, max: 6 }) },
      types: [...(options.types ?? QUESTION_TYPES)],
      voices: { ...VOICES, ...options.voices },
      speechCache: options.speechCache ?? process.env.CHIMERA_SOUNDS_CACHE ?? defaultSpeechCache(),
      seed: options.seed ?? 0,
    };
    const problems: string[] = [];
    const { min, max } = resolved.duration;
    if (!(min >= 2 && max >= min && max <= 30)) problems.push(`duration must satisfy 2 <= min <= max <= 30 seconds, got ${min}..${max}`);
    if (resolved.types.length === 0) problems.push(`types is empty; name at least one of ${QUESTION_TYPES.join(', ')}`);
    for (const type of resolved.types) if (!QUESTION_TYPES.includes(type)) problems.push(`question type '${String(type)}' is unknown; expected one of ${QUESTION_TYPES.join(', ')}`);
    if (new Set(resolved.types).size !== resolved.types.length) problems.push(`types has duplicates: ${resolved.types.join(', ')}`);
    for (const split of SPLIT_NAMES) if (resolved.voices[split].length === 0) problems.push(`voices.${split} is empty; give at least one espeak-ng voice`);
    if (!(Number.isInteger(resolved.seed) && resolved.seed >= 0 && resolved.seed <= 0xffffffff)) problems.push(`seed must be an integer in [0, 2^32), got ${resolved.seed}`);
    if (problems.length > 0) throw new Error(`sounds dataset options are invalid:\n  ${problems.join('\n  ')}`);
    this.options = resolved;
  }

  /**
   * The scene of sample `index` of `split` (no audio): its question type is drawn uniformly from `types`
   * (default: the dataset's), its answer uniformly from the type's answers.
   */
  scene(split: SplitName, index: number, types: readonly QuestionType[] = this.options.types): ClipScene {
    const rng = new SeededRandom(deriveSeed(deriveSeed(this.options.seed, sampleId(split, index)), SCENE_STREAM));
    const type = rng.pick(types);
    return generateScene(type, new SeededRandom(deriveSeed(rng.nextUint32(), QUESTION_TYPES.indexOf(type))), {
      duration: this.options.duration,
      voices: this.options.voices[split],
    });
  }

  /** The clip of a scene as 16 kHz float PCM. */
  render(scene: ClipScene): Float32Array {
    return renderScene(scene, this.options.speechCache);
  }

  /** Sample `index` of `split`: its clip and its question. */
  sample(split: SplitName, index: number, options: { types?: readonly QuestionType[] } = {}): SoundSample {
    const scene = this.scene(split, index, options.types);
    return { split, index, id: sampleId(split, index), scene, audio: this.render(scene), sampleRate: SAMPLE_RATE, question: questionOf(scene) };
  }
}

/** The question a scene was made for. */
export function questionOf(scene: ClipScene): Question {
  return { type: scene.type, text: questionText(scene.type, { lowMentionedFirst: scene.lowMentionedFirst }), answer: scene.answer };
}

/** Stream of a sample's seed used for its scene (others may be added without shifting it). */
const SCENE_STREAM = 1;
