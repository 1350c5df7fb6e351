// Fuzzing config.json: readPretrainedConfig on structure-aware and byte-level mutations, and loadPretrained of a
// real (tiny) checkpoint whose config.json is mutated.
//
// Oracle: `hfRead` below reads a config.json object the way HF's LlamaConfig / Qwen2Config / Qwen3Config define
// it (field names, defaults, which keys each model type reads), plus the limits docs/weights.md states (exact JSON
// integers, sizes within int32, rope factors that give finite angles), written from those definitions and not from
// src/config.ts. For every input the reader must either
//   - return a config equal field for field to hfRead's (and hfRead must find the file valid), or
//   - throw an Error whose message names config.json, when hfRead finds it invalid;
// never a non-Error throw, an error naming no file, or more than 5 s. Edits that keep the meaning (key order,
// formatting, number spelling, unknown and prototype keys) must give exactly the original's config. loadPretrained
// must load exactly when the config is valid and implies the checkpoint's tensors (then its weights are the
// file's), and otherwise fail naming config.json, in bounded time and memory: configs claiming 1e5 layers or a
// vocabulary of 5e7 are among the mutations.
//
// Case counts come from fuzzRuns (CI's reduced count; `npm run fuzz` runs 10,000 each).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportStateDict, saveSafetensors } from '@chimera/core';
import { fuzzRuns, fuzzTimeout, setupTestBackend } from '@chimera/core/testing';
import { loadPretrained, readPretrainedConfig } from '../src/checkpoint/load-pretrained';
import { LLAMA_HF_REMAP } from '../src/checkpoint/hf-keys';
import { configToHF, tinyLlama, type LlamaConfig } from '../src/config';
import { CausalLM } from '../src/model/causal-lm';
import {
  applyByteEdit,
  applyEdits,
  applyPreserving,
  byteEditArb,
  checkThrown,
  editArb,
  hostileValueArb,
  outcomeOf,
  preservingEditArb,
  UNKNOWN_KEYS,
  type ByteEdit,
  type Edit,
  type PreservingEdit,
} from './json-fuzz-helpers';

const CASE_LIMIT_MS = 5000;
const READ_RUNS = fuzzRuns(1500);
const BYTE_RUNS = fuzzRuns(500);
const LOAD_RUNS = fuzzRuns(200);

// ---- the independent reading ----

type Json = Record<string, unknown>;
type Verdict = { ok: true; config: LlamaConfig } | { ok: false; reason: string };

const MAX_SIZE = 2 ** 31 - 1;

/** HF's reading of config.json (see the file comment). */
function hfRead(json: unknown): Verdict {
  const bad = (reason: string): Verdict => ({ ok: false, reason });
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return bad('not an object');
  const raw = json as Json;
  // A key counts when the object itself holds it with a non-null value (HF's `kwargs.get(key)` with None = unset).
  const get = (key: string): unknown => (Object.prototype.hasOwnProperty.call(raw, key) && raw[key] !== null ? raw[key] : undefined);
  const modelType = get('model_type');
  if (modelType !== 'llama' && modelType !== 'qwen2' && modelType !== 'qwen3') return bad('model_type');
  const problems: string[] = [];
  const int = (key: string, fallback: number | undefined, max = MAX_SIZE): number => {
    const v = get(key);
    if (v === undefined) {
      if (fallback === undefined) problems.push(`${key} missing`);
      return fallback ?? NaN;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) problems.push(`${key} not an exact integer`);
    else if (v < 1 || v > max) problems.push(`${key} out of range`);
    return v as number;
  };
  const positive = (key: string, fallback: number): number => {
    const v = get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) problems.push(`${key} not a positive number`);
    return v as number;
  };
  const flag = (key: string): boolean => {
    const v = get(key);
    if (v === undefined) return false;
    if (typeof v !== 'boolean') problems.push(`${key} not a boolean`);
    return v === true;
  };
  const act = get('hidden_act');
  if (act !== undefined && act !== 'silu') problems.push('hidden_act');
  if (flag('use_sliding_window')) problems.push('sliding window');

  const vocabSize = int('vocab_size', undefined);
  const hiddenSize = int('hidden_size', undefined);
  const numLayers = int('num_hidden_layers', undefined);
  const numHeads = int('num_attention_heads', undefined);
  const intermediateSize = int('intermediate_size', undefined);
  const numKvHeads = int('num_key_value_heads', numHeads);
  const headDimKey = get('head_dim');
  const headDim = headDimKey === undefined ? null : int('head_dim', undefined);
  const maxPositionEmbeddings = int('max_position_embeddings', modelType === 'llama' ? 2048 : 32768, Number.MAX_SAFE_INTEGER);
  const ropeTheta = positive('rope_theta', 10000);
  const rmsNormEps = positive('rms_norm_eps', 1e-6);
  const tieWordEmbeddings = flag('tie_word_embeddings');
  const attentionBias = flag('attention_bias'); // every model type reads it (Qwen2 ignores the value)
  const mlpBias = modelType === 'llama' ? flag('mlp_bias') : false;
  if (problems.length) return bad(problems.join(', '));

  const effectiveHeadDim = headDim ?? hiddenSize / numHeads;
  if (numHeads % numKvHeads !== 0) problems.push('heads vs kv heads');
  if (headDim === null && hiddenSize % numHeads !== 0) problems.push('hidden vs heads');
  if (Number.isInteger(effectiveHeadDim) && effectiveHeadDim % 2 !== 0) problems.push('odd head dim');

  // Token ids: a negative single id means none (converted Llama configs say -1); a list must be all valid.
  const id = (key: string): number | null => {
    const v = get(key);
    if (v === undefined) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      problems.push(`${key} type`);
      return null;
    }
    return v < 0 ? null : v;
  };
  const padTokenId = id('pad_token_id');
  const bosTokenId = id('bos_token_id');
  let eosTokenId: number | number[] | null;
  const eos = get('eos_token_id');
  if (Array.isArray(eos)) {
    if (eos.some((e) => typeof e !== 'number' || !Number.isSafeInteger(e))) problems.push('eos list');
    eosTokenId = eos.length === 0 ? null : eos.length === 1 ? (eos[0] as number) : [...(eos as number[])];
  } else eosTokenId = id('eos_token_id');
  for (const t of [padTokenId, bosTokenId, ...(Array.isArray(eosTokenId) ? eosTokenId : [eosTokenId])]) {
    if (t !== null && !(t >= 0 && t < vocabSize)) problems.push('token id range');
  }

  const rope = readRope(raw, effectiveHeadDim, problems);
  if (problems.length) return bad(problems.join(', '));
  return {
    ok: true,
    config: {
      modelType,
      vocabSize,
      hiddenSize,
      numLayers,
      numHeads,
      numKvHeads,
      intermediateSize,
      headDim,
      ropeTheta,
      ropeScaling: rope.scaling,
      mropeSections: rope.sections,
      rmsNormEps,
      tieWordEmbeddings,
      qkNorm: modelType === 'qwen3' ? 'rms' : null,
      attentionBias: modelType === 'qwen2' ? true : attentionBias,
      attentionOutBias: modelType === 'qwen2' ? false : attentionBias,
      mlpBias,
      maxPositionEmbeddings,
      padTokenId,
      bosTokenId,
      eosTokenId,
    },
  };
}

/** rope_scaling: none, linear, llama3, or M-RoPE sections (Qwen2-VL), with HF's and the finite-angle limits. */
function readRope(raw: Json, headDim: number, problems: string[]): { scaling: LlamaConfig['ropeScaling']; sections: number[] | null } {
  const none = { scaling: null, sections: null };
  const rope = Object.prototype.hasOwnProperty.call(raw, 'rope_scaling') ? raw.rope_scaling : undefined;
  if (rope === undefined || rope === null) return none;
  if (typeof rope !== 'object' || Array.isArray(rope)) {
    problems.push('rope_scaling type');
    return none;
  }
  const field = (key: string): unknown => (Object.prototype.hasOwnProperty.call(rope, key) ? (rope as Json)[key] : undefined);
  const type = field('rope_type') ?? field('type');
  const sections = field('mrope_section');
  if (type === 'mrope' || (sections !== undefined && (type === 'default' || type === undefined))) {
    if (!Array.isArray(sections) || sections.some((s) => typeof s !== 'number' || !Number.isSafeInteger(s) || s <= 0)) {
      problems.push('mrope sections');
      return none;
    }
    if ((sections as number[]).reduce((a, b) => a + b, 0) !== headDim / 2) problems.push('mrope sum');
    return { scaling: null, sections: [...(sections as number[])] };
  }
  if (type !== undefined && type !== null && typeof type !== 'string') problems.push('rope type');
  const numbers = ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'];
  if (numbers.some((key) => field(key) !== undefined && typeof field(key) !== 'number')) problems.push('rope number type');
  if (problems.length) return none;
  // An explicit null type is no type HF knows (it fails when building the rotary embedding), unlike an absent one.
  if (type === undefined || type === 'default') return none;
  const factor = field('factor') as number;
  if (type === 'linear') {
    if (!(typeof factor === 'number' && Number.isFinite(factor) && factor >= 1)) problems.push('linear factor');
    return { scaling: { type: 'linear', factor }, sections: null };
  }
  if (type === 'llama3') {
    const low = field('low_freq_factor') as number;
    const high = field('high_freq_factor') as number;
    const original = field('original_max_position_embeddings') as number;
    if (!(typeof factor === 'number' && Number.isFinite(factor) && factor >= 1)) problems.push('llama3 factor');
    if (!(typeof low === 'number' && typeof high === 'number' && low > 0 && high > low)) problems.push('llama3 low/high');
    if (!(Number.isSafeInteger(original) && original > 0)) problems.push('llama3 original');
    return {
      scaling: { type: 'llama3', factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: original },
      sections: null,
    };
  }
  problems.push(`rope type ${String(type)}`);
  return none;
}

// ---- the checkpoints the mutations start from ----

const BASES: { name: string; config: LlamaConfig }[] = [
  { name: 'llama', config: tinyLlama() },
  { name: 'qwen2-tied', config: tinyLlama({ modelType: 'qwen2', attentionBias: true, tieWordEmbeddings: true, eosTokenId: [2, 3], bosTokenId: 1 }) },
  { name: 'qwen3', config: tinyLlama({ modelType: 'qwen3', qkNorm: 'rms', headDim: 16, numLayers: 1 }) },
  {
    name: 'llama3-rope',
    config: tinyLlama({ ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 }, padTokenId: 0 }),
  },
  { name: 'mrope', config: tinyLlama({ modelType: 'qwen2', attentionBias: true, mropeSections: [2, 1, 1] }) },
];

/** Every key the reader looks at (rope keys nested under rope_scaling); "\u0000inf" stands for 1e400 in the text. */
const READ_FIELDS = [
  'model_type', 'hidden_act', 'use_sliding_window', 'vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads',
  'num_key_value_heads', 'intermediate_size', 'head_dim', 'max_position_embeddings', 'rope_theta', 'rms_norm_eps',
  'tie_word_embeddings', 'attention_bias', 'mlp_bias', 'pad_token_id', 'bos_token_id', 'eos_token_id', 'rope_scaling',
  'rope_scaling.rope_type', 'rope_scaling.type', 'rope_scaling.factor', 'rope_scaling.low_freq_factor',
  'rope_scaling.high_freq_factor', 'rope_scaling.original_max_position_embeddings', 'rope_scaling.mrope_section',
];

/** config.json as HF writes it, with the keys HF adds that do not change the model. */
function baseJson(config: LlamaConfig): Json {
  return { ...configToHF(config), initializer_range: 0.02, use_cache: true, transformers_version: '4.46.0', attention_dropout: 0 };
}

/** The fields that decide which tensors a config implies: a loadable mutation must keep them. */
function tensorLayout(c: LlamaConfig): unknown[] {
  return [c.vocabSize, c.hiddenSize, c.numLayers, c.numHeads, c.numKvHeads, c.intermediateSize, c.headDim ?? c.hiddenSize / c.numHeads,
    c.tieWordEmbeddings, c.attentionBias, c.attentionOutBias, c.mlpBias, c.qkNorm];
}

const caseArb = fc.record({
  base: fc.nat(BASES.length - 1),
  mutation: fc.oneof(
    { weight: 5, arbitrary: fc.array(editArb, { minLength: 1, maxLength: 3 }).map((edits) => ({ kind: 'edit' as const, edits })) },
    {
      weight: 2,
      arbitrary: preservingEditArb(
        fc.record({ op: fc.constant('unknown-key' as const), at: fc.nat(), key: fc.constantFrom(...UNKNOWN_KEYS), value: hostileValueArb }),
      ).map((edit) => ({ kind: 'preserve' as const, edit })),
    },
    // One field the reader uses, set to a hostile or boundary value: uniform paths rarely reach nested rope keys.
    {
      weight: 3,
      arbitrary: fc
        .record({
          key: fc.constantFrom(...READ_FIELDS),
          value: fc.oneof(hostileValueArb, fc.constantFrom<unknown>(0, 1, 2, -1, 0.5, 0.999, 1e-9, 4, 8, 63, 64, 65, '\u0000inf')),
        })
        .map((field) => ({ kind: 'field' as const, ...field })),
    },
    // Sizes that would allocate gigabytes if believed.
    {
      weight: 1,
      arbitrary: fc
        .record({
          key: fc.constantFrom('num_hidden_layers', 'vocab_size', 'intermediate_size', 'hidden_size', 'num_attention_heads', 'head_dim'),
          value: fc.constantFrom(100_000, 50_000_000, 2 ** 31 - 1, 1 << 20),
        })
        .map((hostile) => ({ kind: 'hostile' as const, ...hostile })),
    },
  ),
});

type Case = {
  base: number;
  mutation:
    | { kind: 'edit'; edits: Edit[] }
    | { kind: 'preserve'; edit: PreservingEdit }
    | { kind: 'field'; key: string; value: unknown }
    | { kind: 'hostile'; key: string; value: number };
};

function caseText(c: Case): string {
  const json = baseJson(BASES[c.base]!.config);
  if (c.mutation.kind === 'edit') return applyEdits(json, c.mutation.edits);
  if (c.mutation.kind === 'preserve') return applyPreserving(json, c.mutation.edit);
  if (c.mutation.kind === 'field') {
    const [outer, inner] = c.mutation.key.split('.') as [string, string | undefined];
    const value = c.mutation.value === undefined ? null : c.mutation.value;
    if (inner === undefined) return JSON.stringify({ ...json, [outer]: value }).replace('"\u0000inf"', '1e400');
    const rope = json.rope_scaling !== null && typeof json.rope_scaling === 'object' ? json.rope_scaling : { rope_type: 'linear', factor: 2 };
    return JSON.stringify({ ...json, rope_scaling: { ...(rope as Json), [inner]: value } }).replace('"\u0000inf"', '1e400');
  }
  return JSON.stringify({ ...json, [c.mutation.key]: c.mutation.value });
}

/** What the text must read as: hfRead of the parsed text (JSON.parse, as any reader parses), or a parse failure. */
function expectation(text: string): Verdict {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'json' };
  }
  return hfRead(parsed);
}

const stats = { read: 0, rejected: 0, loaded: 0, loadRejected: 0 };

describe('config.json fuzz', () => {
  let root: string;
  const dirs: string[] = [];
  const weights: Record<string, number[]>[] = [];

  beforeAll(async () => {
    await setupTestBackend('cpu');
    root = mkdtempSync(join(tmpdir(), 'chimera-config-fuzz-'));
    for (const [i, base] of BASES.entries()) {
      const dir = join(root, `base-${i}`);
      mkdirSync(dir);
      const model = new CausalLM(base.config);
      const exported = exportStateDict(model.stateDict(), LLAMA_HF_REMAP);
      weights.push({ 'model.norm.weight': Array.from(exported['model.norm.weight']!.dataSync()) });
      await saveSafetensors(join(dir, 'model.safetensors'), exported);
      for (const t of Object.values(exported)) t.dispose();
      model.dispose();
      dirs.push(dir);
    }
    // The bases themselves read as hfRead says: the oracle and the reader agree before any mutation.
    for (const base of BASES) expect(hfRead(JSON.parse(JSON.stringify(baseJson(base.config))))).toEqual({ ok: true, config: base.config });
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    console.info(
      `config.json fuzz: ${stats.read} read and ${stats.rejected} rejected by readPretrainedConfig; ` +
        `${stats.loaded} loaded and ${stats.loadRejected} rejected by loadPretrained`,
    );
  });

  /** Checks one reader outcome against the expectation. */
  function check(outcome: { value?: LlamaConfig; error?: unknown; ms: number }, expected: Verdict, text: string): void {
    expect(outcome.ms, text.slice(0, 200)).toBeLessThan(CASE_LIMIT_MS);
    if (outcome.error !== undefined) {
      checkThrown(outcome.error, 'config.json', text);
      if (expected.ok) throw new Error(`rejected a config HF reads: ${(outcome.error as Error).message}\ninput: ${text.slice(0, 400)}`);
      stats.rejected++;
      return;
    }
    if (!expected.ok) throw new Error(`read a config that is invalid (${expected.reason}) as ${JSON.stringify(outcome.value)}\ninput: ${text.slice(0, 400)}`);
    expect(outcome.value).toEqual(expected.config);
    stats.read++;
  }

  it(`readPretrainedConfig: structure-aware mutations read exactly as HF reads them, or fail naming config.json (${READ_RUNS} cases)`, async () => {
    const dir = join(root, 'read');
    mkdirSync(dir);
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const text = caseText(c as Case);
        writeFileSync(join(dir, 'config.json'), text);
        const expected = expectation(text);
        if (c.mutation.kind === 'preserve') expect(expected).toEqual({ ok: true, config: BASES[c.base]!.config });
        const outcome = await outcomeOf(async () => (await readPretrainedConfig(dir)).config);
        check(outcome, expected, text);
      }),
      { numRuns: READ_RUNS },
    );
    expect(stats.read).toBeGreaterThan(READ_RUNS * 0.15);
    expect(stats.rejected).toBeGreaterThan(READ_RUNS * 0.3);
  }, fuzzTimeout(READ_RUNS, 20));

  it(`readPretrainedConfig: byte-level damage (${BYTE_RUNS} cases)`, async () => {
    const dir = join(root, 'bytes');
    mkdirSync(dir);
    await fc.assert(
      fc.asyncProperty(fc.nat(BASES.length - 1), byteEditArb, async (base, edit: ByteEdit) => {
        const bytes = applyByteEdit(JSON.stringify(baseJson(BASES[base]!.config), null, 2), edit);
        writeFileSync(join(dir, 'config.json'), bytes);
        // Node's utf8 reading replaces invalid sequences; no field the reader uses can hold one and still match.
        const text = new TextDecoder().decode(bytes);
        const outcome = await outcomeOf(async () => (await readPretrainedConfig(dir)).config);
        check(outcome, expectation(text), text);
      }),
      { numRuns: BYTE_RUNS },
    );
  }, fuzzTimeout(BYTE_RUNS, 20));

  it(`loadPretrained: loads exactly the configs that are valid and fit the weights, fails fast naming config.json otherwise (${LOAD_RUNS} cases)`, async () => {
    const before = tf.memory().numTensors;
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const text = caseText(c as Case);
        const dir = dirs[c.base]!;
        writeFileSync(join(dir, 'config.json'), text);
        const expected = expectation(text);
        const fits = expected.ok && JSON.stringify(tensorLayout(expected.config)) === JSON.stringify(tensorLayout(BASES[c.base]!.config));
        const outcome = await outcomeOf(() => loadPretrained(dir, { tokenizer: false }));
        expect(outcome.ms, text.slice(0, 200)).toBeLessThan(CASE_LIMIT_MS);
        if (outcome.error !== undefined) {
          checkThrown(outcome.error, 'config.json', text);
          if (fits) throw new Error(`refused a valid config that fits the weights: ${(outcome.error as Error).message}\ninput: ${text.slice(0, 400)}`);
          stats.loadRejected++;
          return;
        }
        const { model, config } = outcome.value!;
        try {
          if (!fits) throw new Error(`loaded a config that is invalid or does not fit the weights\ninput: ${text.slice(0, 400)}`);
          expect(config).toEqual((expected as { config: LlamaConfig }).config);
          expect(Array.from(model.stateDict()['model.norm.weight']!.dataSync())).toEqual(weights[c.base]!['model.norm.weight']);
          stats.loaded++;
        } finally {
          model.dispose();
        }
      }),
      { numRuns: LOAD_RUNS },
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(stats.loaded).toBeGreaterThan(LOAD_RUNS * 0.1);
  }, fuzzTimeout(LOAD_RUNS, 100));
});
