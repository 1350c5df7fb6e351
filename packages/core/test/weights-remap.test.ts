import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import {
  concatTables,
  conv2dFromTorch,
  conv2dToTorch,
  exportStateDict,
  importStateDict,
  linearFromTorch,
  linearToTorch,
  planRemap,
  prefixTable,
  type RemapTable,
} from '../src/weights/index';
import { expectNoLeaks, setupTestBackend, TEST_BACKENDS } from '../src/testing/index';

/** HF Llama names -> Chimera-style names (the real table lives in @chimera/llm; this one exercises the engine). */
const llamaTable: RemapTable = {
  rules: [
    { external: 'model.embed_tokens.weight', internal: 'embed.weight' },
    { external: 'model.layers.{i}.self_attn.{proj}_proj.weight', internal: 'layers.{i}.attention.{proj}.weight', layout: 'linear' },
    { external: 'model.layers.{i}.mlp.{proj}_proj.weight', internal: 'layers.{i}.mlp.{proj}.weight', layout: 'linear' },
    { external: 'model.layers.{i}.input_layernorm.weight', internal: 'layers.{i}.attention_norm.weight' },
    { external: 'model.layers.{i}.post_attention_layernorm.weight', internal: 'layers.{i}.mlp_norm.weight' },
    { external: 'model.norm.weight', internal: 'norm.weight' },
    { external: 'lm_head.weight', internal: 'head.weight', layout: 'linear' },
  ],
  ignoreExternal: ['model.layers.*.self_attn.rotary_emb.inv_freq'],
};

/** HF CLIP vision tower names -> Chimera-style names. */
const clipTable: RemapTable = {
  rules: [
    { external: 'vision_model.embeddings.patch_embedding.weight', internal: 'patch_embed.weight', layout: 'conv2d' },
    { external: 'vision_model.embeddings.class_embedding', internal: 'cls_token' },
    { external: 'vision_model.embeddings.position_embedding.weight', internal: 'pos_embed.weight' },
    { external: 'vision_model.pre_layrnorm.{p}', internal: 'pre_norm.{p}' },
    { external: 'vision_model.encoder.layers.{i}.self_attn.{proj}.weight', internal: 'blocks.{i}.attn.{proj}.weight', layout: 'linear' },
    { external: 'vision_model.encoder.layers.{i}.self_attn.{proj}.bias', internal: 'blocks.{i}.attn.{proj}.bias' },
    { external: 'vision_model.encoder.layers.{i}.layer_norm{n}.{p}', internal: 'blocks.{i}.norm{n}.{p}' },
    { external: 'vision_model.encoder.layers.{i}.mlp.fc{n}.weight', internal: 'blocks.{i}.mlp.fc{n}.weight', layout: 'linear' },
    { external: 'vision_model.encoder.layers.{i}.mlp.fc{n}.bias', internal: 'blocks.{i}.mlp.fc{n}.bias' },
    { external: 'vision_model.post_layernorm.{p}', internal: 'post_norm.{p}' },
  ],
  ignoreExternal: ['vision_model.embeddings.position_ids'],
};

let counter = 0;
/** Distinct values per tensor, so a wrong key or a wrong transpose shows. */
function distinct(shape: number[]): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const base = counter++ * 1000;
  return tf.tensor(Array.from({ length: size }, (_, i) => base + i), shape);
}

function hfLlama(layers = 2, d = 8, kv = 4, ffn = 12, vocab = 10): Record<string, tf.Tensor> {
  const sd: Record<string, tf.Tensor> = { 'model.embed_tokens.weight': distinct([vocab, d]) };
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    sd[`${p}.self_attn.q_proj.weight`] = distinct([d, d]);
    sd[`${p}.self_attn.k_proj.weight`] = distinct([kv, d]);
    sd[`${p}.self_attn.v_proj.weight`] = distinct([kv, d]);
    sd[`${p}.self_attn.o_proj.weight`] = distinct([d, d]);
    sd[`${p}.self_attn.rotary_emb.inv_freq`] = distinct([d / 2]);
    sd[`${p}.mlp.gate_proj.weight`] = distinct([ffn, d]);
    sd[`${p}.mlp.up_proj.weight`] = distinct([ffn, d]);
    sd[`${p}.mlp.down_proj.weight`] = distinct([d, ffn]);
    sd[`${p}.input_layernorm.weight`] = distinct([d]);
    sd[`${p}.post_attention_layernorm.weight`] = distinct([d]);
  }
  sd['model.norm.weight'] = distinct([d]);
  sd['lm_head.weight'] = distinct([vocab, d]);
  return sd;
}

function hfClip(layers = 2, d = 8, mlp = 16, channels = 3, patch = 2, positions = 5): Record<string, tf.Tensor> {
  const v = 'vision_model';
  const sd: Record<string, tf.Tensor> = {
    [`${v}.embeddings.patch_embedding.weight`]: distinct([d, channels, patch, patch]),
    [`${v}.embeddings.class_embedding`]: distinct([d]),
    [`${v}.embeddings.position_embedding.weight`]: distinct([positions, d]),
    [`${v}.embeddings.position_ids`]: tf.tensor2d([[0, 1, 2, 3, 4]], [1, 5], 'int32'),
    [`${v}.pre_layrnorm.weight`]: distinct([d]),
    [`${v}.pre_layrnorm.bias`]: distinct([d]),
    [`${v}.post_layernorm.weight`]: distinct([d]),
    [`${v}.post_layernorm.bias`]: distinct([d]),
  };
  for (let i = 0; i < layers; i++) {
    const p = `${v}.encoder.layers.${i}`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      sd[`${p}.self_attn.${proj}.weight`] = distinct([d, d]);
      sd[`${p}.self_attn.${proj}.bias`] = distinct([d]);
    }
    for (const n of [1, 2]) {
      sd[`${p}.layer_norm${n}.weight`] = distinct([d]);
      sd[`${p}.layer_norm${n}.bias`] = distinct([d]);
    }
    sd[`${p}.mlp.fc1.weight`] = distinct([mlp, d]);
    sd[`${p}.mlp.fc1.bias`] = distinct([mlp]);
    sd[`${p}.mlp.fc2.weight`] = distinct([d, mlp]);
    sd[`${p}.mlp.fc2.bias`] = distinct([d]);
  }
  return sd;
}

function dispose(record: Record<string, tf.Tensor>): void {
  for (const t of Object.values(record)) t.dispose();
}

/** Element [o][i] of a PyTorch Linear weight must sit at [i][o]. */
function expectTransposed2d(ours: tf.Tensor, theirs: tf.Tensor): void {
  const a = ours.arraySync() as number[][];
  const b = theirs.arraySync() as number[][];
  expect(ours.shape).toEqual([theirs.shape[1], theirs.shape[0]]);
  for (let o = 0; o < b.length; o++) for (let i = 0; i < b[0]!.length; i++) expect(a[i]![o]).toBe(b[o]![i]);
}

/** Element [out][in][h][w] of a PyTorch Conv2d weight must sit at [h][w][in][out]. */
function expectConvLayout(ours: tf.Tensor, theirs: tf.Tensor): void {
  const a = ours.arraySync() as number[][][][];
  const b = theirs.arraySync() as number[][][][];
  const [O, I, H, W] = theirs.shape;
  expect(ours.shape).toEqual([H, W, I, O]);
  for (let o = 0; o < O!; o++)
    for (let i = 0; i < I!; i++)
      for (let h = 0; h < H!; h++) for (let w = 0; w < W!; w++) expect(a[h]![w]![i]![o]).toBe(b[o]![i]![h]![w]);
}

function expectSameDict(a: Record<string, tf.Tensor>, b: Record<string, tf.Tensor>): void {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const k of Object.keys(a)) {
    expect([k, a[k]!.shape, a[k]!.dtype]).toEqual([k, b[k]!.shape, b[k]!.dtype]);
    expect([k, Array.from(a[k]!.dataSync())]).toEqual([k, Array.from(b[k]!.dataSync())]);
  }
}

describe.each(TEST_BACKENDS)('remap tables on %s', (backend) => {
  beforeAll(async () => {
    await setupTestBackend(backend);
  });

  it('imports an HF Llama state dict with transposed linears, and exports it back exactly', async () => {
    const hf = hfLlama();
    const ours = await expectNoLeaks(() => importStateDict(hf, llamaTable));
    expect(Object.keys(ours).sort()).toEqual(
      [
        'embed.weight', 'norm.weight', 'head.weight',
        ...[0, 1].flatMap((i) => [
          ...['q', 'k', 'v', 'o'].map((p) => `layers.${i}.attention.${p}.weight`),
          ...['gate', 'up', 'down'].map((p) => `layers.${i}.mlp.${p}.weight`),
          `layers.${i}.attention_norm.weight`, `layers.${i}.mlp_norm.weight`,
        ]),
      ].sort(),
    );
    expectTransposed2d(ours['layers.1.attention.k.weight']!, hf['model.layers.1.self_attn.k_proj.weight']!);
    expectTransposed2d(ours['layers.0.mlp.down.weight']!, hf['model.layers.0.mlp.down_proj.weight']!);
    expectTransposed2d(ours['head.weight']!, hf['lm_head.weight']!);
    expect(Array.from(ours['embed.weight']!.dataSync())).toEqual(Array.from(hf['model.embed_tokens.weight']!.dataSync()));
    expect(ours['embed.weight']!.shape).toEqual([10, 8]);

    const back = exportStateDict(ours, llamaTable);
    const expected = Object.fromEntries(Object.entries(hf).filter(([k]) => !k.includes('inv_freq')));
    expectSameDict(back, expected);
    dispose(back);
    dispose(ours);
    dispose(hf);
  });

  it('imports an HF CLIP vision tower with conv2d [out,in,kH,kW] -> [kH,kW,in,out], and exports it back', () => {
    const hf = hfClip();
    const ours = importStateDict(hf, clipTable);
    expectConvLayout(ours['patch_embed.weight']!, hf['vision_model.embeddings.patch_embedding.weight']!);
    expectTransposed2d(ours['blocks.1.mlp.fc1.weight']!, hf['vision_model.encoder.layers.1.mlp.fc1.weight']!);
    expectTransposed2d(ours['blocks.0.attn.out_proj.weight']!, hf['vision_model.encoder.layers.0.self_attn.out_proj.weight']!);
    expect(Array.from(ours['blocks.0.norm2.bias']!.dataSync())).toEqual(
      Array.from(hf['vision_model.encoder.layers.0.layer_norm2.bias']!.dataSync()),
    );
    expect(ours['vision_model.embeddings.position_ids']).toBeUndefined();
    expect(Object.keys(ours)).toHaveLength(Object.keys(hf).length - 1);

    const back = exportStateDict(ours, clipTable);
    expectSameDict(back, Object.fromEntries(Object.entries(hf).filter(([k]) => !k.endsWith('position_ids'))));
    dispose(back);
    dispose(ours);
    dispose(hf);
  });

  it('composes a LLaVA-style checkpoint from prefixed tables, both directions', () => {
    const table = concatTables(
      prefixTable(clipTable, { external: 'vision_tower.', internal: 'image.encoder.' }),
      prefixTable(llamaTable, { external: 'language_model.', internal: 'llm.' }),
      {
        rules: [{ external: /multi_modal_projector\.linear_(\d+)\.weight/, internal: 'image.projector.$1.weight', layout: 'linear', inverse: { internal: /image\.projector\.(\d+)\.weight/, external: 'multi_modal_projector.linear_$1.weight' } }],
      },
    );
    const hf: Record<string, tf.Tensor> = {};
    for (const [k, t] of Object.entries(hfClip(1))) hf[`vision_tower.${k}`] = t;
    for (const [k, t] of Object.entries(hfLlama(1))) hf[`language_model.${k}`] = t;
    hf['multi_modal_projector.linear_1.weight'] = distinct([8, 8]);
    hf['multi_modal_projector.linear_2.weight'] = distinct([8, 8]);
    const ours = importStateDict(hf, table);
    expect(Object.keys(ours)).toContain('image.encoder.blocks.0.attn.q_proj.weight');
    expect(Object.keys(ours)).toContain('llm.layers.0.attention.q.weight');
    expect(Object.keys(ours).some((k) => k.includes('inv_freq') || k.includes('position_ids'))).toBe(false);
    expectTransposed2d(ours['image.projector.2.weight']!, hf['multi_modal_projector.linear_2.weight']!);
    expectConvLayout(ours['image.encoder.patch_embed.weight']!, hf['vision_tower.vision_model.embeddings.patch_embedding.weight']!);
    const back = exportStateDict(ours, table);
    expectSameDict(back, Object.fromEntries(Object.entries(hf).filter(([k]) => !k.includes('inv_freq') && !k.includes('position_ids'))));
    dispose(back);
    dispose(ours);
    dispose(hf);
  });

  it('layout helpers invert each other', () => {
    const w = distinct([3, 5]);
    const conv = distinct([4, 3, 2, 2]);
    tf.tidy(() => {
      expectTransposed2d(linearFromTorch(w), w);
      expect(Array.from(linearToTorch(linearFromTorch(w)).dataSync())).toEqual(Array.from(w.dataSync()));
      expectConvLayout(conv2dFromTorch(conv), conv);
      expect(Array.from(conv2dToTorch(conv2dFromTorch(conv)).dataSync())).toEqual(Array.from(conv.dataSync()));
    });
    expect(() => conv2dFromTorch(w)).toThrow(/expects rank 4, got shape \[3,5\]/);
    w.dispose();
    conv.dispose();
  });
});

describe('remap table errors', () => {
  beforeAll(async () => {
    await setupTestBackend('cpu');
  });

  it('rejects unmatched keys with the list and the fix, unless ignored, dropped or kept', () => {
    const names = ['model.norm.weight', 'model.layers.0.self_attn.q_proj.bias', 'model.extra.scale'];
    expect(() => planRemap(names, llamaTable, 'import')).toThrow(
      /no rule matches 2 key\(s\): model.layers.0.self_attn.q_proj.bias, model.extra.scale; add rules for them or list them in the table's ignoreExternal/,
    );
    expect(planRemap(names, { ...llamaTable, ignoreExternal: [/bias$/, 'model.extra'] }, 'import').dropped).toEqual(names.slice(1));
    expect(planRemap(names, { ...llamaTable, unmatched: 'drop' }, 'import').entries.map((e) => e.target)).toEqual(['norm.weight']);
    expect(planRemap(names, { ...llamaTable, unmatched: 'keep' }, 'import').entries.map((e) => e.target)).toEqual([
      'norm.weight', 'model.layers.0.self_attn.q_proj.bias', 'model.extra.scale',
    ]);
    expect(() => planRemap(['embed.weight', 'stray'], llamaTable, 'export')).toThrow(/no rule matches 1 key\(s\): stray.*ignoreInternal/);
  });

  it('first matching rule wins; placeholders match one segment, {...rest} several', () => {
    const table: RemapTable = {
      rules: [
        { external: 'a.special.w', internal: 'first' },
        { external: 'a.{x}.w', internal: 'one.{x}' },
        { external: 'a.{...rest}', internal: 'many.{rest}' },
      ],
    };
    expect(planRemap(['a.special.w', 'a.b.w', 'a.b.c.w'], table, 'import').entries.map((e) => e.target)).toEqual([
      'first', 'one.b', 'many.b.c.w',
    ]);
  });

  it('refuses two keys mapping to one target, wrong ranks, and rules that cannot export', () => {
    const collide: RemapTable = { rules: [{ external: '{a}.x', internal: 'same' }] };
    expect(() => planRemap(['p.x', 'q.x'], collide, 'import')).toThrow(/'p.x' and 'q.x' both map to 'same'/);
    expect(() => planRemap(['same'], collide, 'export')).toThrow(/internal template lacks \{a\}/);
    const regexOnly: RemapTable = { rules: [{ external: /w(\d)/, internal: 'v$1' }] };
    expect(planRemap(['w1'], regexOnly, 'import').entries[0]!.target).toBe('v1');
    expect(planRemap(['xw1'], { ...regexOnly, unmatched: 'drop' }, 'import').entries).toEqual([]); // whole-key match only
    expect(() => planRemap(['v1'], regexOnly, 'export')).toThrow(/cannot be inverted for export; give it an `inverse: /);
    const bias = tf.zeros([4]);
    expect(() => importStateDict({ 'lm_head.weight': bias }, llamaTable)).toThrow(/'lm_head.weight' has shape \[4\] but its rule's layout needs rank 2/);
    bias.dispose();
  });

  it('can dispose the source as it goes', () => {
    const hf = hfLlama(1);
    const before = tf.memory().numTensors;
    const ours = importStateDict(hf, llamaTable, { disposeSource: true });
    expect(Object.values(hf).every((t) => t.isDisposed)).toBe(true);
    expect(tf.memory().numTensors).toBe(before - Object.keys(hf).length + Object.keys(ours).length);
    dispose(ours);
  });
});
