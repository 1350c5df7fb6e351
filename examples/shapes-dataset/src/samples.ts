/**
 * Writes a few samples for a person to look at: a grid of single-shape images captioned with their kind,
 * colour and size class, a grid of multi-shape scenes captioned with a question and its answer, and the scene
 * descriptions as JSON; and the fine-detail task's images of several sizes, each beside its thumbnail at a quarter
 * of its side (scaled back up), which shows why its questions need the full resolution; and the generation set's
 * images with their prompts (seen and held-out pairs).
 *
 *   npm run samples -- [--out samples] [--count 24] [--split train|validation|test] [--size 32] [--seed 0]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { resizeImage } from '@chimera/vision-encoder';
import { ShapesDataset } from './dataset';
import { FINE_DETAIL_TYPES, fineDetailOptions, sizeKey } from './fine-detail';
import { generationOptions, generationSamples } from './generation-set';
import { imageGrid } from './grid';
import { writePng } from './png';
import { SPLIT_NAMES, type SplitName } from './splits';

function main(): void {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: 'samples' },
      count: { type: 'string', default: '24' },
      split: { type: 'string', default: 'train' },
      size: { type: 'string', default: '32' },
      seed: { type: 'string', default: '0' },
    },
  });
  const count = Number(values.count);
  const imageSize = Number(values.size);
  const seed = Number(values.seed);
  const split = values.split as SplitName;
  if (!SPLIT_NAMES.includes(split)) throw new Error(`--split must be one of ${SPLIT_NAMES.join(', ')}, got '${values.split}'`);
  if (!(Number.isInteger(count) && count >= 1)) throw new Error(`--count must be a positive integer, got '${values.count}'`);
  mkdirSync(values.out!, { recursive: true });

  const single = new ShapesDataset({ imageSize, seed });
  const singles = Array.from({ length: count }, (_, i) => single.classification(split, i));
  const singlePath = join(values.out!, 'classification.png');
  writePng(
    singlePath,
    imageGrid(singles.map((s) => ({ image: s.image, caption: [`${s.kind}`, `${s.scene.shapes[0]!.color} ${s.scene.shapes[0]!.sizeClass}`] }))),
  );

  const multi = new ShapesDataset({ imageSize: Math.max(imageSize, 48), seed, shapesPerImage: { min: 1, max: 4 } });
  const questions = Array.from({ length: count }, (_, i) => multi.question(split, i));
  const questionPath = join(values.out!, 'questions.png');
  writePng(questionPath, imageGrid(questions.map((s) => ({ image: s.image, caption: [s.question.text, `= ${s.question.answer}`] })), { scale: 3 }));

  const fine = new ShapesDataset(fineDetailOptions({ sizes: 'all', seed }));
  const fineTiles = Array.from({ length: Math.min(count, 12) }, (_, i) => fine.question(split, i, { types: FINE_DETAIL_TYPES })).flatMap((s) => {
    const { width, height } = s.image;
    const thumbnail = resizeImage(resizeImage(s.image, width / 4, height / 4, 'bilinear'), width, height, 'bilinear');
    return [
      { image: s.image, caption: [sizeKey(s.image), s.question.text, `= ${s.question.answer}`] },
      { image: thumbnail, caption: ['its thumbnail', `${width / 4}x${height / 4}, scaled up`] },
    ];
  });
  const finePath = join(values.out!, 'fine-detail.png');
  writePng(finePath, imageGrid(fineTiles, { columns: 6, scale: 2 }));

  const generation = new ShapesDataset(generationOptions({ seed }));
  const generationTiles = [...generationSamples(generation, split, 18, 'seen'), ...generationSamples(generation, split, 6, 'held-out')].map((s) => ({
    image: s.image,
    caption: [s.prompt.slice(2), s.heldOut ? 'held out' : 'seen'],
  }));
  const generationPath = join(values.out!, 'generation.png');
  writePng(generationPath, imageGrid(generationTiles, { columns: 6, scale: 3 }));

  const scenesPath = join(values.out!, 'scenes.json');
  const described = [...singles, ...questions].map(({ image: _image, ...rest }) => rest);
  writeFileSync(scenesPath, `${JSON.stringify(described, null, 1)}\n`);
  console.log(`wrote ${singlePath}, ${questionPath}, ${finePath}, ${generationPath} and ${scenesPath}`);
}

main();
