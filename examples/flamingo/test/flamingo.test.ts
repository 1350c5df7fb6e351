// The example's checks on its own model: episodes give the LLM the same ids with and without pixels, zero gates
// leave the frozen LLM's logits (and generations with cached media) exactly unchanged, no text sees a later
// image, training steps leak no tensors, a reduced run learns to answer from images well above the text-only
// baseline, and its trainable-only checkpoint reloads onto freshly built frozen parts with the same answers.
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, loadCheckpoint } from '@chimera/core';
import type { ComposedModel } from '@chimera/fusion';
import { generate } from '@chimera/llm';
import type { PreparedImage, RgbImage } from '@chimera/vision-encoder';
import { ShapesDataset, QUESTION_TYPES } from '@chimera-examples/shapes-dataset';
import { episodeSample, textBatch } from '../src/batches';
import { episodeText, makeEpisode, promptText, type Episode, type EpisodeOptions } from '../src/episodes';
import { evaluateComposed } from '../src/evaluate';
import { runExperiment } from '../src/experiment';
import { DEFAULT_SIZE, buildLLM, buildVision, composeFlamingo, type FlamingoSize } from '../src/model';
import { trainFusion } from '../src/training';
import { BOS, END_OF_CHUNK, IMAGE, decodeIds, encodeWords } from '../src/vocabulary';
import { unknownFlagProblems } from '@chimera-examples/kit';

const TINY: FlamingoSize = {
  ...DEFAULT_SIZE,
  imageSize: 16,
  visionHidden: 16,
  visionLayers: 1,
  visionHeads: 2,
  visionFfn: 32,
  llmHidden: 32,
  llmLayers: 2,
  llmHeads: 2,
  llmFfn: 64,
  latents: 4,
  perceiverHeads: 2,
  perceiverHeadDim: 8,
  xattnEvery: 1,
};
const EPISODES: EpisodeOptions = { types: QUESTION_TYPES, multiImageFraction: 0.5, maxImages: 3 };

function tinyModel(seed: number) {
  const llm = buildLLM(TINY, seed);
  const image = buildVision(TINY, seed + 1);
  return { llm, image, prepare: (raw: RgbImage) => image.prepare(raw) };
}

describe('flamingo example', () => {
  let dataset: ShapesDataset;
  let episodes: Episode[];
  beforeAll(async () => {
    await initBackend(); // the default backend, as the example
    dataset = new ShapesDataset({ imageSize: TINY.imageSize, shapesPerImage: { min: 1, max: 3 } });
    episodes = Array.from({ length: 12 }, (_, i) => makeEpisode(dataset, 'test', i, EPISODES));
  });

  it('writes episodes in the Flamingo format, deterministically, with multi-image episodes', () => {
    const again = Array.from({ length: 12 }, (_, i) => makeEpisode(dataset, 'test', i, EPISODES));
    expect(again.map((e) => e.chunks.map((c) => c.question.text))).toEqual(episodes.map((e) => e.chunks.map((c) => c.question.text)));
    expect(new Set(episodes.map((e) => e.chunks.length)).size).toBeGreaterThan(1);
    const episode = episodes.find((e) => e.chunks.length === 2)!;
    const [first, second] = episode.chunks;
    const expected = ['<bos>', '<image>', first!.question.text, first!.question.answer, '<|endofchunk|>', '<image>', second!.question.text, second!.question.answer, '<|endofchunk|>'];
    expect(decodeIds(episodeText(episode).ids)).toBe(expected.join(' '));
    expect(decodeIds(promptText(episode))).toBe(expected.slice(0, -2).join(' '));
    // Loss on the answers and the ends of chunks only.
    const { ids, trained } = episodeText(episode);
    expect(ids.filter((_, i) => trained[i])).toEqual([first!.answerId, END_OF_CHUNK, second!.answerId, END_OF_CHUNK]);
    expect(encodeWords('what color is the square?')).toHaveLength(6);
  });

  it('gives the composed model exactly the ids the text-only LLM sees (the image markers stand where the images go)', () => {
    const { llm, image, prepare } = tinyModel(1);
    const model = composeFlamingo(llm, image, TINY, 3);
    try {
      const layout = model.layout(episodes.map((e) => episodeSample(e, prepare)));
      episodes.forEach((episode, b) => {
        const { ids } = episodeText(episode);
        const row = Array.from(layout.inputIds.subarray(b * layout.length, b * layout.length + ids.length));
        expect(row).toEqual(ids);
        expect(layout.rowLengths[b]).toBe(ids.length);
        expect(row.filter((id) => id === IMAGE)).toHaveLength(episode.chunks.length);
      });
    } finally {
      model.dispose();
    }
  });

  it('identity at init: with zero gates the composed model gives the frozen LLM\'s logits and answers exactly', async () => {
    const { llm, image, prepare } = tinyModel(5);
    const reference = tf.tidy(() => llm.forward({ inputIds: textBatch(episodes).inputIds }).logits);
    const referenceAnswers = await generate(llm, episodes.map(promptText), { maxNewTokens: 3, eosTokenId: END_OF_CHUNK });
    const model = composeFlamingo(llm, image, TINY, 6);
    const before = tf.memory().numTensors;
    try {
      const output = model.forward(episodes.map((e) => episodeSample(e, prepare)));
      const [B, T, V] = output.logits.shape as [number, number, number];
      expect(reference.shape).toEqual([B, T, V]);
      const ours = output.logits.dataSync();
      const theirs = reference.dataSync();
      episodes.forEach((episode, b) => {
        const real = episodeText(episode).ids.length * V;
        const start = b * T * V;
        expect(Array.from(ours.subarray(start, start + real))).toEqual(Array.from(theirs.subarray(start, start + real)));
      });
      tf.dispose(output);
      // Generation with cached media keys/values, through the zero gates, answers as the LLM alone.
      const scores = await evaluateComposed(model, prepare, episodes, 8);
      const ids = referenceAnswers.tokens.map((row) => {
        const end = row.indexOf(END_OF_CHUNK);
        return decodeIds(end < 0 ? row : row.slice(0, end));
      });
      expect(scores.predictions.map((p) => p.answer)).toEqual(ids);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      reference.dispose();
      model.dispose();
    }
  });

  it('media masking: no position sees an image placed after it, text before the first image sees none', () => {
    // (Which earlier image a question sees cannot be read off the logits: the LLM's own self-attention carries
    // what the first chunk's tokens took from the first image into the second chunk. @chimera/fusion's tests
    // check the 'latest' cross-attention mask itself.)
    const { llm, image, prepare } = tinyModel(7);
    const model = composeFlamingo(llm, image, TINY, 8);
    try {
      // Open the gates so the images change the logits.
      for (const [name, v] of model.namedParameters()) if (/_gate$/.test(name)) v.assign(tf.fill(v.shape, 0.8));
      const episode = episodes.find((e) => e.chunks.length === 2)!;
      const other = makeEpisode(dataset, 'validation', 1, { ...EPISODES, multiImageFraction: 0 }).chunks[0]!.image;
      const withImage = (k: number): Episode => ({ ...episode, chunks: episode.chunks.map((c, j) => (j === k ? { ...c, image: other } : c)) });
      const logits = (e: Episode) => tf.tidy(() => model.forward([episodeSample(e, prepare)]).logits.arraySync() as number[][][])[0]!;
      const original = logits(episode);
      const maxDiff = (b: number[][], from: number, to: number) =>
        Math.max(...original.slice(from, to).flatMap((row, t) => row.map((v, k) => Math.abs(v - b[from + t]![k]!))));
      const secondImageAt = episodeText(episode).ids.lastIndexOf(IMAGE);
      const firstSwapped = logits(withImage(0));
      expect(maxDiff(firstSwapped, 0, 1)).toBe(0); // <bos>: before any image
      expect(maxDiff(firstSwapped, 1, secondImageAt)).toBeGreaterThan(1e-3); // the first chunk sees the first image
      const secondSwapped = logits(withImage(1));
      expect(maxDiff(secondSwapped, 0, secondImageAt)).toBe(0); // nothing before the second image sees it
      expect(maxDiff(secondSwapped, secondImageAt, original.length)).toBeGreaterThan(1e-3); // the second chunk does
    } finally {
      model.dispose();
    }
  });

  it('has no leaked tensors across fusion training steps (the LLM and ViT frozen)', async () => {
    const { llm, image, prepare } = tinyModel(9);
    const model = composeFlamingo(llm, image, TINY, 10);
    const singleShape = new ShapesDataset({ imageSize: TINY.imageSize, shapesPerImage: 1 });
    try {
      model.trainOnly('fusion');
      const before = tf.memory().numTensors;
      const counts: number[] = [];
      await trainFusion(model, prepare, singleShape, EPISODES, {
        steps: 4,
        batchSize: 4,
        learningRate: 1e-3,
        seed: 1,
        onStep: () => counts.push(tf.memory().numTensors),
      });
      // The optimizer's moments appear at the first step; after that nothing may grow. The Trainer frees them at the end.
      expect(counts.slice(1)).toEqual(counts.slice(1).map(() => counts[0]));
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      model.dispose();
    }
  });

  it('learns to answer colour questions from the images, far above the text-only baseline; the trainable-only checkpoint reloads onto fresh frozen parts', async () => {
    const startTensors = tf.memory().numTensors;
    const dir = mkdtempSync(join(tmpdir(), 'flamingo-test-'));
    const size: FlamingoSize = { ...TINY, visionHidden: 32, visionFfn: 64, visionLayers: 2 };
    const result = await runExperiment({
      seed: 2,
      size,
      episodes: { types: ['color'], multiImageFraction: 0.25, maxImages: 2 },
      pretrain: { steps: 30, batchSize: 32, learningRate: 1e-2 },
      visionPretrain: { steps: 60, batchSize: 32, learningRate: 5e-3 },
      fusion: { steps: 60, batchSize: 16, learningRate: 5e-3 },
      testEpisodes: 96,
      checkpoints: { llm: join(dir, 'llm.safetensors'), vision: join(dir, 'vision.safetensors') },
    });
    try {
      expect(result.identityMaxDiff).toBe(0);
      // Six colours: the text-only LLM can only guess, and the composed model starts exactly there.
      expect(result.textOnly.accuracy).toBeLessThan(0.35);
      expect(result.composedAtInit.predictions.map((p) => p.answer)).toEqual(result.textOnly.predictions.slice(0, result.composedAtInit.total).map((p) => p.answer));
      expect(result.trained.accuracy).toBeGreaterThanOrEqual(0.8);
      expect(result.trained.accuracy).toBeGreaterThan(result.textOnly.accuracy + 0.45);
      // The LLM and the ViT stayed frozen: only the resampler and the cross-attention blocks trained.
      const trainable = result.model.summary().groups.filter((g) => g.trainable !== 'no').map((g) => g.name);
      expect(trainable.sort()).toEqual(['image.resampler', 'image.xattn']);

      // Trainable-only checkpoint: onto freshly built parts (other random weights, then the saved pre-trained
      // LLM and ViT), it must give the same logits and the same answers.
      const fusionPath = join(dir, 'fusion.safetensors');
      const saved = await result.model.save(fusionPath, { trainableOnly: true });
      expect(saved.every((name) => name.startsWith('image.resampler.') || name.includes('xattn'))).toBe(true);
      const llm = buildLLM(size, 100);
      await loadCheckpoint(llm, join(dir, 'llm.safetensors'));
      const image = buildVision(size, 101);
      await loadCheckpoint(image.encoder!, join(dir, 'vision.safetensors'));
      const fresh = composeFlamingo(llm, image, size, 102);
      try {
        const prepareFresh = (raw: RgbImage) => image.prepare(raw);
        const probe = result.testSet.slice(0, 8);
        const logitsOf = (model: ComposedModel, prepare: (raw: RgbImage) => PreparedImage) =>
          tf.tidy(() => Array.from(model.forward(probe.map((e) => episodeSample(e, prepare))).logits.dataSync()));
        expect(logitsOf(fresh, prepareFresh)).not.toEqual(logitsOf(result.model, result.prepare)); // fresh fusion weights differ
        await fresh.load(fusionPath);
        expect(logitsOf(fresh, prepareFresh)).toEqual(logitsOf(result.model, result.prepare));
        const again = await evaluateComposed(fresh, prepareFresh, result.testSet);
        expect(again.predictions.map((p) => p.answer)).toEqual(result.trained.predictions.map((p) => p.answer));
        expect(fresh.summary().groups.filter((g) => g.trainable !== 'no').map((g) => g.name).sort()).toEqual(['image.resampler', 'image.xattn']);
      } finally {
        fresh.dispose();
      }
    } finally {
      result.model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(tf.memory().numTensors).toBe(startTensors);
  });
});

describe('the training script', () => {
  it('prints the problem and the usage on stderr and exits 2 for an unknown flag, before any training', async () => {
    expect(await unknownFlagProblems(new URL('../dist/train.js', import.meta.url))).toEqual([]);
  });
});
