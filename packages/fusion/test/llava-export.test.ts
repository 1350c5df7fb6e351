// The LLaVA export (docs/scaling.md): a composed LLaVA-style model written as HF's LlavaForConditionalGeneration
// (both key layouts), read back bit for bit, and its logits checked against a plain-torch LLaVA forward
// (test/reference/llava_reference.py, built from the vision and llm packages' references). Refusals of what HF's
// class cannot hold, and of a config.json that does not describe the model, are checked too.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { manualSeed, readSafetensorsHeader } from '@chimera/core';
import { expectNoLeaks, runTorchScript, setupTestBackend, torchAvailable } from '@chimera/core/testing';
import * as visionEncoder from '@chimera/vision-encoder';
import { VisionTransformer, tinyViT, visionModality } from '@chimera/vision-encoder';
import { LLAVA_LAYOUTS, compose, earlyFusion, exportLlava, loadLlavaWeights, type ComposedModel, type ComposedSample, type EarlyFusionOptions } from '../src/index';
import { BOS, IMAGE_ID, VOCAB, exactlyEqual, sameValues, testImage, tinyBackbone } from './helpers/toy';

const hasTorch = torchAvailable();
const script = fileURLToPath(new URL('./reference/llava_reference.py', import.meta.url));
const TOLERANCE = 1e-4;

/** 'transformers<4.52' -> 'before-4.52' (a folder name; the two layouts must not share one). */
const folderName = (layout: string) => (layout.includes('>=') ? 'since-4.52' : 'before-4.52');

interface Built {
  model: ComposedModel;
  image: ReturnType<typeof visionModality>;
}

/**
 * A tiny LLaVA: CLIP-style ViT (16 px, 4 px patches: 16 tokens, width 16, 2 layers, tap -2, CLS dropped), the
 * mlp2x_gelu projector and a GQA Llama (2 heads over 1 KV head, untied head). Every parameter is moved off its
 * initial value (norms away from 1 and 0), so a tensor put in the wrong place changes the logits.
 */
function build(seed: number, options: { vit?: Parameters<typeof tinyViT>[0]; plugin?: object; fusion?: EarlyFusionOptions } = {}): Built {
  manualSeed(seed);
  const image = visionModality({ mode: 'vit', encoder: new VisionTransformer(tinyViT(options.vit)), ...options.plugin });
  const model = compose({
    backbone: tinyBackbone(),
    modalities: { image },
    fusion: { image: earlyFusion({ projector: 'mlp2x_gelu', ...options.fusion }) },
    placeholders: { image: IMAGE_ID },
  });
  model.namedParameters().forEach(([, v], i) => {
    tf.tidy(() => v.assign(tf.add(v, tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', seed * 1000 + i), 0.3))));
  });
  return { model, image };
}

/** Two rows of different lengths (right padding): the image first, and the image between text. */
function samples(image: Built['image']): ComposedSample[] {
  return [
    [{ text: [BOS], trained: false }, { modality: 'image', item: image.prepare(testImage(1)) }, { text: [4, 5, 6] }],
    [{ text: [BOS, 7, 8], trained: false }, { modality: 'image', item: image.prepare(testImage(2)) }, { text: [9, 10, 11, 12, 13] }],
  ];
}

describe('LLaVA export in HF LlavaForConditionalGeneration layout (cpu)', () => {
  let dir: string;
  let reference: Built;
  beforeAll(async () => {
    await setupTestBackend('cpu');
    dir = mkdtempSync(join(tmpdir(), 'chimera-llava-export-'));
    reference = build(1);
  });
  afterAll(() => {
    reference?.model.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes HF names, [out, in] layouts and a LlavaConfig', async () => {
    const out = join(dir, 'names');
    const { keys, config } = await expectNoLeaks(() => exportLlava(reference.model, out, { visionEncoder }));
    const header = await readSafetensorsHeader(join(out, 'model.safetensors'));
    const shapes = new Map(header.entries.map((e) => [e.name, e.shape]));
    expect(header.metadata.format).toBe('pt');
    expect(new Set(shapes.keys())).toEqual(new Set(keys));
    expect(keys.length).toBe(reference.model.namedParameters().length);
    // One name from each part, with PyTorch's layout: Linear [out, in], the patch conv [out, in, kH, kW].
    expect(shapes.get('vision_tower.vision_model.embeddings.patch_embedding.weight')).toEqual([16, 3, 4, 4]);
    expect(shapes.get('vision_tower.vision_model.encoder.layers.1.self_attn.out_proj.weight')).toEqual([16, 16]);
    expect(shapes.get('vision_tower.vision_model.pre_layrnorm.weight')).toEqual([16]);
    expect(shapes.get('multi_modal_projector.linear_1.weight')).toEqual([16, 16]);
    expect(shapes.get('multi_modal_projector.linear_2.bias')).toEqual([16]);
    expect(shapes.get('language_model.model.layers.1.self_attn.k_proj.weight')).toEqual([8, 16]); // 1 KV head of 8
    expect(shapes.get('language_model.lm_head.weight')).toEqual([VOCAB, 16]);
    expect(keys.every((k) => /^(vision_tower\.vision_model|multi_modal_projector|language_model\.(model|lm_head))\./.test(k))).toBe(true);

    const written = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(written).toEqual(config);
    expect(written).toMatchObject({
      architectures: ['LlavaForConditionalGeneration'],
      model_type: 'llava',
      image_token_index: IMAGE_ID,
      image_seq_length: 16,
      projector_hidden_act: 'gelu',
      multimodal_projector_bias: true,
      vision_feature_layer: -2,
      vision_feature_select_strategy: 'default',
      tie_word_embeddings: false,
      vision_config: { model_type: 'clip_vision_model', hidden_size: 16, num_hidden_layers: 2, image_size: 16, patch_size: 4, hidden_act: 'quick_gelu' },
      text_config: { model_type: 'llama', vocab_size: VOCAB, hidden_size: 16, num_key_value_heads: 1 },
    });
  });

  it.each(LLAVA_LAYOUTS)('round-trips exactly through the %s layout: every tensor and the logits', async (layout) => {
    const out = join(dir, `round-trip-${folderName(layout)}`);
    await exportLlava(reference.model, out, { visionEncoder, layout });
    const fresh = build(2);
    try {
      const batch = samples(reference.image);
      const before = fresh.model.forward(batch);
      const expected = reference.model.forward(batch);
      expect(exactlyEqual(before.logits, expected.logits)).toBe(false); // the fresh model starts elsewhere
      const result = await expectNoLeaks(() => loadLlavaWeights(fresh.model, out, { visionEncoder }));
      expect(result.layout).toBe(layout);
      const own = reference.model.stateDict();
      const loaded = fresh.model.stateDict();
      expect(Object.keys(loaded).sort()).toEqual(Object.keys(own).sort());
      const differing = Object.keys(own).filter((name) => !exactlyEqual(own[name]!, loaded[name]!));
      expect(differing).toEqual([]);
      const after = fresh.model.forward(batch);
      expect(exactlyEqual(after.logits, expected.logits)).toBe(true);
      tf.dispose([before, expected, after]);
    } finally {
      fresh.model.dispose();
    }
  });

  it.skipIf(!hasTorch)('both layouts give the PyTorch reference logits within 1e-4 (one torch run)', async () => {
    const batch = samples(reference.image);
    const layoutOf = reference.model.layout(batch);
    const { batchSize: B, length: T } = layoutOf;
    // HF input_ids: the image token at every image position (HF's processor expands <image> the same way).
    const ids = Array.from(layoutOf.inputIds, (id, p) => (layoutOf.spliceSource[p]! >= 0 ? IMAGE_ID : id));
    expect(ids.filter((id) => id === IMAGE_ID).length).toBe(2 * 16);
    const rows = (flat: ArrayLike<number>) => Array.from({ length: B }, (_, b) => Array.from(flat).slice(b * T, (b + 1) * T));
    const pixels = [1, 2].flatMap((seed) => Array.from(reference.image.prepare(testImage(seed)).pixels)); // the images of samples()
    const inputs = join(dir, 'torch-inputs.json');
    writeFileSync(inputs, JSON.stringify({ input_ids: rows(ids), attention_mask: rows(layoutOf.paddingMask), pixels: { shape: [2, 16, 16, 3], data: pixels } }));
    const jobs = [];
    for (const layout of LLAVA_LAYOUTS) {
      const name = folderName(layout);
      await exportLlava(reference.model, join(dir, `parity-${name}`), { visionEncoder, layout });
      jobs.push({ dir: join(dir, `parity-${name}`), inputs, output: join(dir, `torch-${name}.json`) });
    }
    writeFileSync(join(dir, 'torch-jobs.json'), JSON.stringify(jobs));
    runTorchScript(script, [join(dir, 'torch-jobs.json')]);

    const { logits } = reference.model.forward(batch);
    const values = logits.dataSync();
    tf.dispose(logits);
    for (const [k, layout] of LLAVA_LAYOUTS.entries()) {
      const torch = JSON.parse(readFileSync(jobs[k]!.output, 'utf8')) as { layout: string; logits: number[][][] };
      expect(torch.layout).toBe(layout); // the reference read the names of this layout
      let worst = 0;
      let compared = 0;
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          if (!layoutOf.paddingMask[b * T + t]) continue; // padded positions are masked differently and unused
          for (let v = 0; v < VOCAB; v++) {
            worst = Math.max(worst, Math.abs(values[(b * T + t) * VOCAB + v]! - torch.logits[b]![t]![v]!));
            compared++;
          }
        }
      }
      expect(compared).toBe((4 + 16 + 8 + 16) * VOCAB); // every real position of both rows
      expect(worst, layout).toBeLessThan(TOLERANCE);
      console.log(`LLaVA export ${layout}: max |logit - torch| = ${worst.toExponential(2)}`);
    }
  });

  it('refuses what LlavaForConditionalGeneration cannot hold, before writing anything', async () => {
    const cases: [string, Built, RegExp][] = [
      ['rope2d tower', build(3, { vit: { positions: 'rope2d' } }), /'rope2d' has no HF CLIP\/SigLIP layout/],
      ['merged patches', build(3, { plugin: { merge: 2 } }), /merges patches, which HF's LLaVA does not/],
      ["'final' tap", build(3, { plugin: { layers: 'final' } }), /has no vision_feature_layer equivalent/],
      ['linear projector', build(3, { fusion: { projector: 'linear' } }), /linear_1, GELU, linear_2/],
    ];
    for (const [what, built, message] of cases) {
      const out = join(dir, `refused-${what.replace(/\W/g, '')}`);
      await expect(exportLlava(built.model, out, { visionEncoder }), what).rejects.toThrow(message);
      expect(() => readFileSync(join(out, 'config.json')), what).toThrow(/ENOENT/);
      built.model.dispose();
    }
    await expect(exportLlava(reference.model, join(dir, 'no-vision'), {} as never)).rejects.toThrow(/import \* as visionEncoder/);
  });

  it('refuses a folder whose config.json describes another model, naming the fields', async () => {
    const out = join(dir, 'edited');
    await exportLlava(reference.model, out, { visionEncoder });
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    config.vision_feature_layer = -1;
    config.text_config.rms_norm_eps = 1e-5;
    writeFileSync(join(out, 'config.json'), JSON.stringify(config));
    const fresh = build(2);
    try {
      const untouched = fresh.model.stateDict()['llm.model.norm.weight']!.dataSync().slice();
      const error = await loadLlavaWeights(fresh.model, out, { visionEncoder }).catch((e: Error) => e);
      expect(String(error)).toMatch(/vision_feature_layer: the file has -1, the model -2/);
      expect(String(error)).toMatch(/rmsNormEps\): the file has 0.00001, the model 0.000001/);
      expect(sameValues(fresh.model.stateDict()['llm.model.norm.weight']!.dataSync(), untouched)).toBe(true); // nothing assigned
    } finally {
      fresh.model.dispose();
    }
  });
});
