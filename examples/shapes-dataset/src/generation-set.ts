// The images the generating examples (chameleon, janus, later transfusion) learn to draw and the judge scores:
// 32x32 pixels, one large shape on a quiet background, so a small VQ-VAE reconstructs it and 16-64 codes describe
// it. A prompt names the shape's colour and kind ("a red square"); six of the 30 kind-colour pairs are held out
// of training, for a compositional test (every kind and every colour still appears in the seen pairs).
import type { ShapesDataset, ShapeSample } from './dataset';
import { SHAPE_KINDS, type ShapeKind } from './kinds';
import type { ShapesOptions } from './options';
import { COLOR_NAMES, type ColorName } from './palette';
import type { SplitName } from './splits';

/** Side of a generation image in pixels. */
export const GENERATION_IMAGE_SIZE = 32;

/** Dataset options of the generation set; pass them to `new ShapesDataset(...)`. Any field can be overridden. */
export function generationOptions(overrides: ShapesOptions = {}): ShapesOptions {
  return {
    imageSize: GENERATION_IMAGE_SIZE,
    shapesPerImage: 1,
    shapeSize: { min: 14, max: 24 },
    backgroundLevel: { min: 10, max: 30 },
    backgroundNoise: 2,
    colorJitter: 6,
    ...overrides,
  };
}

/** A kind and a colour: what a prompt asks for and what the judge names. */
export interface KindColor {
  kind: ShapeKind;
  color: ColorName;
}

/** All 30 pairs, kinds outer, colours inner. */
export const GENERATION_PAIRS: readonly KindColor[] = SHAPE_KINDS.flatMap((kind) => COLOR_NAMES.map((color) => ({ kind, color })));

/** Pairs no training image shows: one per colour, kinds shifted so each kind keeps at least four colours. */
export const HELD_OUT_PAIRS: readonly KindColor[] = COLOR_NAMES.map((color, i) => ({ kind: SHAPE_KINDS[i % SHAPE_KINDS.length]!, color }));

/** True when the pair is one of HELD_OUT_PAIRS. */
export function isHeldOutPair(pair: KindColor): boolean {
  return HELD_OUT_PAIRS.some((p) => p.kind === pair.kind && p.color === pair.color);
}

/** The pairs training may show. */
export const SEEN_PAIRS: readonly KindColor[] = GENERATION_PAIRS.filter((p) => !isHeldOutPair(p));

/** The prompt of a pair: "a red square". */
export function promptFor(pair: KindColor): string {
  return `a ${pair.color} ${pair.kind}`;
}

/** A single-shape sample with its pair and prompt. */
export interface GenerationSample extends ShapeSample, KindColor {
  prompt: string;
  heldOut: boolean;
}

/** Sample `index` of `split` from a dataset built with generationOptions (one shape per image). */
export function generationSample(dataset: ShapesDataset, split: SplitName, index: number): GenerationSample {
  const sample = dataset.sample(split, index);
  if (sample.scene.shapes.length !== 1) {
    throw new Error(
      `generationSample: needs one shape per image, ${split} sample ${index} has ${sample.scene.shapes.length}; ` +
        'build the dataset with generationOptions()',
    );
  }
  const { kind, color } = sample.scene.shapes[0]!;
  return { ...sample, kind, color, prompt: promptFor({ kind, color }), heldOut: isHeldOutPair({ kind, color }) };
}

/**
 * The first `count` samples of `split` whose pair passes `which` ('seen' skips held-out pairs, 'held-out' keeps only
 * them), scanning indices from `start`. Deterministic: the same call gives the same samples.
 */
export function generationSamples(
  dataset: ShapesDataset,
  split: SplitName,
  count: number,
  which: 'seen' | 'held-out' | 'all' = 'seen',
  start = 0,
): GenerationSample[] {
  if (!(Number.isInteger(count) && count >= 0)) throw new Error(`generationSamples: count must be a whole number, got ${count}`);
  const out: GenerationSample[] = [];
  for (let index = start; out.length < count; index++) {
    if (index - start > 1000 + count * 100) throw new Error(`generationSamples: found only ${out.length} of ${count} '${which}' samples; check the dataset's kinds and colors`);
    const sample = generationSample(dataset, split, index);
    if (which === 'all' || (which === 'held-out') === sample.heldOut) out.push(sample);
  }
  return out;
}
