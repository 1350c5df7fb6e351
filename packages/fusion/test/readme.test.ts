// The README's examples, run as written (tiny sizes, two training steps), so the guide cannot drift from the API.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Trainer } from '@chimera/core';
import { setupTestBackend } from '@chimera/core/testing';
import { ByteTokenizer, CausalLM, addTokensToModel, tinyLlama } from '@chimera/llm';
import { VisionTransformer, solidImage, tinyViT, visionModality } from '@chimera/vision-encoder';
import { compose, earlyFusion, gatedCrossAttention, type ComposedSample } from '../src/index';

describe('README examples (cpu)', () => {
  let dir: string;
  beforeAll(async () => {
    await setupTestBackend('cpu');
    dir = mkdtempSync(join(tmpdir(), 'chimera-readme-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('LLaVA-style: compose, two stages, generate, save and load the projector', async () => {
    const redSquare = solidImage(16, 16, [255, 0, 0]);
    const path = join(dir, 'projector.safetensors');
    // --- README: LLaVA-style ---
    const tokenizer = new ByteTokenizer();
    const backbone = new CausalLM(tinyLlama({ vocabSize: tokenizer.vocabSize }));
    addTokensToModel(tokenizer, backbone, ['<image>']); // grows the embeddings to fit the new token
    const image = visionModality({ mode: 'vit', encoder: new VisionTransformer(tinyViT()) });
    const model = compose({
      backbone,
      modalities: { image },
      fusion: { image: earlyFusion({ projector: 'mlp2x_gelu' }) },
      tokenizer,
      placeholders: { image: '<image>' },
    });

    const sample: ComposedSample = [
      { text: 'USER: ', trained: false },
      { modality: 'image', raw: redSquare }, // an RgbImage, PNG/JPEG bytes or a path
      { text: ' What color is the square? ASSISTANT:', trained: false },
      { text: ' red' },
    ];

    model.trainOnly('projector'); // LLaVA stage 1: only the projector learns
    console.log(model.summary().table);
    const trainer = new Trainer({ model, loss: (m, batch: ComposedSample[]) => m.loss(batch), batchAt: () => [sample], steps: 2, progress: false });
    await trainer.fit();
    trainer.dispose();
    model.trainOnly('projector+llm'); // LLaVA stage 2 (build a new Trainer: it takes the trainable set)

    const { text } = await model.generate(sample.slice(0, 3), { maxNewTokens: 4 });
    model.trainOnly('projector');
    await model.save(path, { trainableOnly: true });
    // --- end ---
    expect(text).toHaveLength(1);
    expect(model.summary().groups.map((g) => g.name)).toEqual(['llm', 'image.encoder', 'image.projector']);
    await model.load(path);
    model.dispose();
  });

  it('Flamingo-style: a frozen LLM with gated cross-attention every layer', async () => {
    // --- README: Flamingo-style ---
    const tokenizer = new ByteTokenizer({ additionalSpecialTokens: ['<image>'] });
    const backbone = new CausalLM(tinyLlama({ vocabSize: tokenizer.vocabSize, numLayers: 2 }));
    const image = visionModality({ mode: 'vit', encoder: new VisionTransformer(tinyViT()) });
    const model = compose({
      backbone,
      modalities: { image },
      fusion: {
        image: gatedCrossAttention({
          layers: { every: 1 }, // Llama 3.2 Vision: { every: 4 }
          mode: 'latest', // each text token sees the latest preceding image
          resampler: { type: 'perceiver', numLatents: 8, depth: 2, heads: 2, headDim: 8 },
        }),
      },
      tokenizer,
      placeholders: { image: '<image>' }, // the marker token where each image appears
      trainable: 'fusion', // resampler + cross-attention blocks; LLM and encoder frozen
    });
    // --- end ---
    const out = model.forward([[{ text: 'A ' }, { modality: 'image', raw: solidImage(16, 16, [0, 0, 255]) }, { text: ' blue square.' }]]);
    expect(out.logits.shape[0]).toBe(1);
    tf.dispose(out);
    expect(model.summary().groups.map((g) => `${g.name}:${g.trainable}`)).toEqual([
      'llm:no',
      'image.encoder:no',
      'image.resampler:yes',
      'image.xattn:yes',
    ]);
    model.dispose();
  });
});
