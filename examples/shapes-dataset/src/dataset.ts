// The dataset: random access to seeded samples of a split, as scenes, images, classification labels and
// question/answer pairs. Every method is a pure function of (options, split, index), so a training loop's
// batches can be a pure function of the step.
import type { RgbImage } from '@chimera/vision-encoder';
import { resolveShapesOptions, type ResolvedShapesOptions, type ShapesOptions } from './options';
import type { ShapeKind } from './kinds';
import { deriveSeed, SeededRandom } from './random';
import { sampleQuestion, questionsFor, QUESTION_TYPES, type Question, type QuestionType } from './questions';
import { renderScene } from './render';
import { generateScene, type Scene } from './scene';
import { sampleId, type SplitName } from './splits';

export interface ShapeSample {
  split: SplitName;
  index: number;
  /** The sample's 32-bit id (see splits.ts). */
  id: number;
  scene: Scene;
  image: RgbImage;
}

export interface ClassificationSample extends ShapeSample {
  /** Index of the shape's kind in `dataset.kinds`. */
  label: number;
  kind: ShapeKind;
}

export interface QuestionSample extends ShapeSample {
  question: Question;
}

export interface QuestionOptions {
  /** Question types to draw from (default: all of QUESTION_TYPES). */
  types?: readonly QuestionType[];
  /** Several different draws per image: slot 0, 1, ... (default 0). */
  slot?: number;
}

/** Streams derived from a sample's seed, one per use, so adding a use never shifts another's draws. */
const SCENE_STREAM = 1;
const QUESTION_STREAM = 2;

export class ShapesDataset {
  readonly options: ResolvedShapesOptions;

  constructor(options: ShapesOptions = {}) {
    this.options = resolveShapesOptions(options);
  }

  /** The kinds in label order. */
  get kinds(): readonly ShapeKind[] {
    return this.options.kinds;
  }

  /** The scene of sample `index` of `split` (no pixels). */
  scene(split: SplitName, index: number): Scene {
    return generateScene(this.sampleSeed(split, index, SCENE_STREAM), this.options);
  }

  sample(split: SplitName, index: number): ShapeSample {
    const scene = this.scene(split, index);
    return { split, index, id: sampleId(split, index), scene, image: renderScene(scene) };
  }

  /** A single-shape sample and its kind's label; needs shapesPerImage 1. */
  classification(split: SplitName, index: number): ClassificationSample {
    const { min, max } = this.options.shapesPerImage;
    if (min !== 1 || max !== 1) {
      throw new Error(
        `ShapesDataset.classification: needs exactly one shape per image, but shapesPerImage is ${min}..${max}; ` +
          'build the dataset with shapesPerImage: 1, or use question() for multi-shape scenes',
      );
    }
    const sample = this.sample(split, index);
    const kind = sample.scene.shapes[0]!.kind;
    return { ...sample, kind, label: this.options.kinds.indexOf(kind) };
  }

  /**
   * A sample with one question about it (see sampleQuestion). Throws when no requested type applies to the
   * scene (e.g. only 'left-of' with single-shape images).
   */
  question(split: SplitName, index: number, options: QuestionOptions = {}): QuestionSample {
    const types = options.types ?? QUESTION_TYPES;
    const slot = options.slot ?? 0;
    if (!(Number.isInteger(slot) && slot >= 0 && slot <= 0xffff)) throw new Error(`ShapesDataset.question: slot must be an integer in [0, 65535], got ${slot}`);
    const sample = this.sample(split, index);
    const rng = new SeededRandom(deriveSeed(this.sampleSeed(split, index, QUESTION_STREAM), slot));
    const question = sampleQuestion(sample.scene, this.options.kinds, rng, types);
    if (!question) {
      throw new Error(
        `ShapesDataset.question: no question of type ${types.join('/')} applies to ${split} sample ${index} ` +
          `(${sample.scene.shapes.length} shapes); add types such as 'count' that every scene has`,
      );
    }
    return { ...sample, question };
  }

  /** Every unambiguous question about the sample's scene. */
  allQuestions(split: SplitName, index: number): Question[] {
    return questionsFor(this.scene(split, index), this.options.kinds);
  }

  private sampleSeed(split: SplitName, index: number, stream: number): number {
    return deriveSeed(deriveSeed(this.options.seed, sampleId(split, index)), stream);
  }
}
