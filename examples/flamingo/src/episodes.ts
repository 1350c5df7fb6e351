/**
 * Interleaved episodes in the Flamingo format: one or more chunks, each an image followed by a question about it
 * and the answer, then `<|endofchunk|>`:
 *
 *   <bos> <image> what color is the square ? red <|endofchunk|> <image> how many circles are there ? 2 <|endofchunk|>
 *
 * In a multi-image episode every question is about the latest image before it, so the cross-attention's media
 * mask ('latest') decides what each question can see. The text side of an episode (the same ids with the
 * `<image>` markers but no pixels) is what the LLM is pre-trained on and what the text-only baseline sees.
 * Everything is a pure function of (dataset, split, episode index), so a Trainer's batchAt(step) can build it.
 */
import type { RgbImage } from '@chimera/vision-encoder';
import { SPLITS, deriveSeed, type Question, type QuestionType, type ShapesDataset, type SplitName } from '@chimera-examples/shapes-dataset';
import { BOS, END_OF_CHUNK, IMAGE, encodeWords } from './vocabulary';

export interface EpisodeOptions {
  /** Question types asked. */
  types: readonly QuestionType[];
  /** Fraction of episodes with more than one image (0..1). */
  multiImageFraction: number;
  /** Most images in an episode (>= 1); a multi-image episode has 2..maxImages, uniformly. */
  maxImages: number;
}

export interface Chunk {
  /** Index of the image in its split (`dataset.question(split, imageIndex)`). */
  imageIndex: number;
  image: RgbImage;
  question: Question;
  questionIds: number[];
  answerId: number;
}

export interface Episode {
  split: SplitName;
  index: number;
  chunks: Chunk[];
}

/**
 * Episode `index` of `split`: its image count, then one question per image. Episodes take their images from
 * disjoint index ranges (index * maxImages + k), apart from the rare probe for an askable image.
 */
export function makeEpisode(dataset: ShapesDataset, split: SplitName, index: number, options: EpisodeOptions): Episode {
  const { maxImages, multiImageFraction } = options;
  if (!(Number.isInteger(maxImages) && maxImages >= 1)) throw new Error(`makeEpisode: maxImages must be an integer >= 1, got ${maxImages}`);
  const capacity = Math.floor(SPLITS[split].size / maxImages);
  if (!(Number.isInteger(index) && index >= 0 && index < capacity)) {
    throw new Error(`makeEpisode: episode index must be an integer in [0, ${capacity}) for ${split} with maxImages ${maxImages}, got ${index}`);
  }
  const draw = deriveSeed(0x5eed, index) / 2 ** 32; // uniform in [0, 1), fixed per episode index
  let count = 1;
  if (maxImages > 1 && draw < multiImageFraction) count = 2 + Math.floor((draw / multiImageFraction) * (maxImages - 1));
  const chunks = Array.from({ length: count }, (_, k) => {
    const imageIndex = askableImage(dataset, split, index * maxImages + k, options.types);
    const { image, question } = dataset.question(split, imageIndex, { types: options.types });
    const [answerId, ...rest] = encodeWords(question.answer);
    if (answerId === undefined || rest.length > 0) throw new Error(`makeEpisode: answer '${question.answer}' is not one word`);
    return { imageIndex, image, question, questionIds: encodeWords(question.text), answerId };
  });
  return { split, index, chunks };
}

/**
 * The image index `wanted`, or when none of `types` can be asked about its scene (e.g. a shape question needs a
 * colour only one shape has), the first of a fixed probe sequence of other indices that can.
 */
function askableImage(dataset: ShapesDataset, split: SplitName, wanted: number, types: readonly QuestionType[]): number {
  const size = SPLITS[split].size;
  for (let attempt = 0; attempt < 64; attempt++) {
    const index = (wanted + attempt * PROBE_STRIDE) % size;
    if (dataset.allQuestions(split, index).some((q) => types.includes(q.type))) return index;
  }
  throw new Error(`makeEpisode: found no ${split} image near index ${wanted} with a question of type ${types.join('/')}; allow more question types or shapes per image`);
}

/** Steps between probed image indices: far apart, so probes of neighbouring episodes do not meet. */
const PROBE_STRIDE = 0x9e3779b;

/** The text side of an episode for LM training: ids, and which positions' next-token targets count (answers and ends of chunks). */
export function episodeText(episode: Episode): { ids: number[]; trained: boolean[] } {
  const ids = [BOS];
  const trained = [false];
  for (const chunk of episode.chunks) {
    const prompt = [IMAGE, ...chunk.questionIds];
    ids.push(...prompt, chunk.answerId, END_OF_CHUNK);
    trained.push(...prompt.map(() => false), true, true);
  }
  return { ids, trained };
}

/** The text side of an episode's generation prompt: every chunk in full except the last, whose answer is asked for. */
export function promptText(episode: Episode): number[] {
  const { ids } = episodeText(episode);
  return ids.slice(0, ids.length - 2);
}

/** Training-episode indices of a step: spread over the train split by a seeded hash; a pure function of (seed, step). */
export function trainingEpisodeIndices(seed: number, step: number, batchSize: number, maxImages: number): number[] {
  const capacity = Math.floor(SPLITS.train.size / maxImages);
  return Array.from({ length: batchSize }, (_, i) => deriveSeed(seed, (step * batchSize + i) >>> 0) % capacity);
}
