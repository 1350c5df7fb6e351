// Fuzzing tokenizer.json: HFTokenizer.fromDirectory on structure-aware, meaning-preserving and byte-level mutations
// of four small tokenizers (GPT-2-style byte-level BPE, Llama-2-style SentencePiece BPE, BERT-style WordPiece,
// Unigram with Metaspace).
//
// Oracle, for every input: loading either throws an Error whose message names tokenizer.json (a library error
// included), or gives a tokenizer that reads the file exactly:
//   - vocabSize is what the JSON says: one past the largest id of model.vocab and added_tokens, plus the special
//     tokens tokenizer_config.json names that the file lacks (appended, as transformers does);
//   - every vocabulary token has the file's id (an added token with the same content takes precedence, as in HF)
//     and every id decodes to its token;
//   - encode gives integer ids inside the vocabulary, the same ids twice, and decode gives a string (or either
//     throws an Error naming tokenizer.json);
//   - after an edit that keeps the file's meaning (key order, formatting, number spelling, unknown and prototype
//     keys, extra vocabulary entries under prototype names), encode and decode agree exactly with the original,
//     which round-trips the sample texts for the byte-level and SentencePiece files.
// Never a non-Error throw, an error naming no file, or a case over 5 s.
//
// Case counts come from fuzzRuns (CI's reduced count; `npm run fuzz` runs 10,000).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fc from 'fast-check';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fuzzRuns, fuzzTimeout } from '@chimera/core/testing';
import { HFTokenizer } from '../src/tokenizers/hf-tokenizer';
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
import { byteLevelBpeFiles, sentencePieceBpeFiles } from './tokenizers-fixtures';

const CASE_LIMIT_MS = 5000;
const RUNS = fuzzRuns(1500);

type Json = Record<string, unknown>;
interface Base {
  name: string;
  tokenizerJson: Json;
  tokenizerConfig: Json;
  /** decode(encode(text)) === text for the samples. */
  roundTrips: boolean;
}

function special(id: number, content: string) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** BERT-style WordPiece: lower-casing normalizer, ## continuations, [CLS] x [SEP] template. */
function wordPieceFiles(): Base {
  const vocab: Record<string, number> = { '[PAD]': 0, '[UNK]': 1, '[CLS]': 2, '[SEP]': 3 };
  for (const c of "abcdefghijklmnopqrstuvwxyz0123456789.,!?'") vocab[c] = Object.keys(vocab).length;
  for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789') vocab[`##${c}`] = Object.keys(vocab).length;
  for (const w of ['hello', 'world', 'the', '##ing', '##llo']) vocab[w] = Object.keys(vocab).length;
  const cls = { SpecialToken: { id: '[CLS]', type_id: 0 } };
  const sep = { SpecialToken: { id: '[SEP]', type_id: 0 } };
  return {
    name: 'wordpiece',
    roundTrips: false,
    tokenizerJson: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]'].map((content, id) => special(id, content)),
      normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
      pre_tokenizer: { type: 'BertPreTokenizer' },
      post_processor: {
        type: 'TemplateProcessing',
        single: [cls, { Sequence: { id: 'A', type_id: 0 } }, sep],
        pair: [cls, { Sequence: { id: 'A', type_id: 0 } }, sep, { Sequence: { id: 'B', type_id: 1 } }, sep],
        special_tokens: { '[CLS]': { id: '[CLS]', ids: [2], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [3], tokens: ['[SEP]'] } },
      },
      decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
      model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
    },
    tokenizerConfig: { tokenizer_class: 'BertTokenizer', unk_token: '[UNK]', pad_token: '[PAD]', clean_up_tokenization_spaces: true },
  };
}

/** Unigram over Metaspace (T5 / ALBERT style). */
function unigramFiles(): Base {
  const pieces: [string, number][] = [['<unk>', 0], ['<s>', 0], ['</s>', 0], ['▁', -2]];
  for (const c of 'abcdefghijklmnopqrstuvwxyz') pieces.push([c, -5], [`▁${c}`, -4.5]);
  for (const w of ['▁hello', '▁world', '▁the', 'ing', 'llo']) pieces.push([w, -3]);
  const metaspace = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true };
  return {
    name: 'unigram',
    roundTrips: false,
    tokenizerJson: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => special(id, content)),
      normalizer: null,
      pre_tokenizer: metaspace,
      post_processor: null,
      decoder: metaspace,
      model: { type: 'Unigram', unk_id: 0, vocab: pieces, byte_fallback: false },
    },
    tokenizerConfig: { unk_token: '<unk>', bos_token: '<s>', eos_token: '</s>', add_bos_token: false, add_eos_token: false },
  };
}

const BASES: Base[] = [
  { name: 'byte-level', roundTrips: true, ...byteLevelBpeFiles() },
  { name: 'sentencepiece', roundTrips: true, ...sentencePieceBpeFiles() },
  wordPieceFiles(),
  unigramFiles(),
];

/** Plain text (the round-trip samples), then text with special tokens written in it. */
const PLAIN = ['hello world', 'the hello', 'Héllo wörld ✓ 你好 🙂', '  two  spaces\tand\nlines', 'ab12'];
const SAMPLES = [...PLAIN, '<|im_start|>user\nhi<|im_end|>', '<s> [CLS] x'];

// ---- the independent reading of the vocabulary ----

const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/**
 * token -> id and the size the file says, or null when the file has no readable vocabulary (then it must not
 * load). Added tokens override the model's id for their content; configured special tokens the file lacks are
 * appended in the order bos, eos, pad, unk, additional_special_tokens.
 */
function expectedVocabulary(json: unknown, config: Json): { ids: Map<string, number>; byId: Map<number, string>; size: number } | null {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return null;
  const model = hasOwn(json, 'model') ? (json as Json).model : undefined;
  if (model === null || typeof model !== 'object' || Array.isArray(model)) return null;
  const raw = (model as Json).vocab;
  const ids = new Map<string, number>();
  const byId = new Map<number, string>();
  if (Array.isArray(raw)) {
    raw.forEach((entry, i) => {
      if (Array.isArray(entry) && typeof entry[0] === 'string') {
        ids.set(entry[0], i);
        byId.set(i, entry[0]);
      }
    });
  } else if (raw !== null && typeof raw === 'object') {
    for (const token of Object.keys(raw)) {
      const id = (raw as Json)[token];
      if (typeof id !== 'number') return null;
      ids.set(token, id);
      byId.set(id, token);
    }
  } else return null;
  const added = hasOwn(json, 'added_tokens') ? (json as Json).added_tokens : [];
  if (Array.isArray(added)) {
    for (const entry of added) {
      if (entry && typeof entry === 'object' && typeof (entry as Json).content === 'string' && typeof (entry as Json).id === 'number') {
        ids.set((entry as Json).content as string, (entry as Json).id as number);
        byId.set((entry as Json).id as number, (entry as Json).content as string);
      }
    }
  }
  let size = Math.max(-1, ...byId.keys()) + 1;
  const unk = typeof config.unk_token === 'string' ? config.unk_token : typeof (model as Json).unk_token === 'string' ? (model as Json).unk_token : undefined;
  const configured = [config.bos_token, config.eos_token, config.pad_token, unk, ...((config.additional_special_tokens as unknown[]) ?? [])];
  for (const token of configured) {
    if (typeof token === 'string' && !ids.has(token)) {
      ids.set(token, size);
      byId.set(size, token);
      size++;
    }
  }
  return { ids, byId, size };
}

// ---- cases ----

type Mutation =
  | { kind: 'edit'; edits: Edit[] }
  | { kind: 'field'; path: string; value: unknown }
  | { kind: 'preserve'; edit: PreservingEdit }
  | { kind: 'prototype-tokens'; tokens: string[] }
  | { kind: 'bytes'; edit: ByteEdit };

/** Paths into the parts that decide what the file means (uniform paths mostly land in the vocabulary). */
const FIELD_PATHS = [
  'model.type', 'model.vocab', 'model.merges', 'model.merges.0', 'model.merges.0.1', 'model.unk_token', 'model.unk_id',
  'model.byte_fallback', 'model.continuing_subword_prefix', 'model.vocab.a', 'model.vocab.he', 'model.vocab.0', 'model.vocab.0.1',
  'added_tokens', 'added_tokens.0', 'added_tokens.0.id', 'added_tokens.0.content', 'added_tokens.1.id', 'added_tokens.2.special',
  'normalizer', 'normalizer.type', 'normalizer.normalizers', 'normalizer.lowercase', 'pre_tokenizer', 'pre_tokenizer.type',
  'pre_tokenizer.add_prefix_space', 'pre_tokenizer.replacement', 'pre_tokenizer.use_regex', 'post_processor',
  'post_processor.type', 'post_processor.single', 'post_processor.special_tokens', 'decoder', 'decoder.type',
  'decoder.decoders', 'decoder.prefix',
];

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.array(editArb, { minLength: 1, maxLength: 3 }).map((edits) => ({ kind: 'edit' as const, edits })) },
  {
    weight: 4,
    arbitrary: fc
      .record({
        path: fc.constantFrom(...FIELD_PATHS),
        value: fc.oneof(hostileValueArb, fc.constantFrom<unknown>(0, 1, 2, 3, 263, 264, 2 ** 31 - 2, 2 ** 31 - 1, 5e7, 'BPE', 'Unigram', 'WordPiece', 'Sequence', '##', '<unk>', ['a', 'b'], 'a b', ['Ġ', 'x'])),
      })
      .map((m) => ({ kind: 'field' as const, ...m })),
  },
  {
    weight: 2,
    arbitrary: preservingEditArb(
      fc.record({
        op: fc.constant('unknown-key' as const),
        at: fc.nat(),
        key: fc.constantFrom(...UNKNOWN_KEYS.filter((k) => k !== 'x_unknown'), 'x_unknown'),
        value: hostileValueArb,
      }),
    ).map((edit) => ({ kind: 'preserve' as const, edit })),
  },
  {
    weight: 1,
    arbitrary: fc
      .subarray(['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'], { minLength: 1 })
      .map((tokens) => ({ kind: 'prototype-tokens' as const, tokens })),
  },
  { weight: 2, arbitrary: byteEditArb.map((edit) => ({ kind: 'bytes' as const, edit })) },
);

/** Sets the value at a dotted path (own keys; array indices by number) when its parent exists. */
function setPath(json: Json, path: string, value: unknown): string {
  const keys = path.split('.');
  let parent: unknown = json;
  for (const key of keys.slice(0, -1)) {
    if (parent === null || typeof parent !== 'object') return JSON.stringify(json);
    parent = (parent as Json)[key];
  }
  if (parent !== null && typeof parent === 'object') {
    Object.defineProperty(parent, keys[keys.length - 1]!, { value: value ?? null, enumerable: true, writable: true, configurable: true });
  }
  return JSON.stringify(json);
}

/** The file bytes for a case, and whether the edit keeps the base's meaning. */
function caseBytes(base: Base, m: Mutation): { bytes: Uint8Array; preserving: boolean } {
  const json = JSON.parse(JSON.stringify(base.tokenizerJson)) as Json;
  const encode = (text: string) => new TextEncoder().encode(text);
  switch (m.kind) {
    case 'edit':
      return { bytes: encode(applyEdits(json, m.edits)), preserving: false };
    case 'field':
      return { bytes: encode(setPath(json, m.path, m.value)), preserving: false };
    case 'preserve':
      return { bytes: encode(applyPreserving(json, m.edit, (path) => ['vocab', 'special_tokens'].includes(String(path[path.length - 1])))), preserving: true };
    case 'prototype-tokens': {
      // New vocabulary entries named like Object.prototype members, at fresh ids: nothing else may change.
      const model = json.model as Json;
      if (Array.isArray(model.vocab)) for (const t of m.tokens) (model.vocab as unknown[]).push([t, -20]);
      else {
        const vocab = model.vocab as Json;
        let next = Math.max(...Object.values(vocab).map(Number), ...(json.added_tokens as { id: number }[]).map((a) => a.id)) + 1;
        for (const t of m.tokens) Object.defineProperty(vocab, t, { value: next++, enumerable: true, writable: true, configurable: true });
      }
      return { bytes: encode(JSON.stringify(json)), preserving: true };
    }
    case 'bytes':
      return { bytes: applyByteEdit(JSON.stringify(json, null, 1), m.edit), preserving: false };
  }
}

const stats = { loaded: 0, rejected: 0, preserved: 0 };

describe('tokenizer.json fuzz', () => {
  let root: string;
  const reference: { encode: Map<string, number[]>; decode: Map<string, string> }[] = [];

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'chimera-tokenizer-fuzz-'));
    for (const base of BASES) {
      const tokenizer = HFTokenizer.fromJSON(base.tokenizerJson, base.tokenizerConfig);
      const encode = new Map<string, number[]>();
      const decode = new Map<string, string>();
      for (const text of SAMPLES) {
        const ids = tokenizer.encode(text, { addSpecialTokens: false });
        encode.set(text, ids);
        decode.set(text, tokenizer.decode(ids));
        if (base.roundTrips && PLAIN.includes(text)) expect([base.name, tokenizer.decode(ids)]).toEqual([base.name, text]);
      }
      expect(tokenizer.vocabSize).toBe(expectedVocabulary(base.tokenizerJson, base.tokenizerConfig)!.size);
      reference.push({ encode, decode });
    }
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    console.info(`tokenizer.json fuzz: ${stats.loaded} loaded (${stats.preserved} meaning-preserving), ${stats.rejected} rejected`);
  });

  /** Runs a tokenizer call: its value, or undefined after checking the thrown value names tokenizer.json. */
  function guarded<T>(call: () => T, input: string): T | undefined {
    try {
      return call();
    } catch (error) {
      checkThrown(error, 'tokenizer.json', input);
      return undefined;
    }
  }

  it(`loads each mutated tokenizer.json exactly as the file says, or fails naming it (${RUNS} cases)`, async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat(BASES.length - 1), mutationArb, async (b, m) => {
        const base = BASES[b]!;
        const dir = join(root, `case-${n++ % 8}`);
        const { bytes, preserving } = caseBytes(base, m);
        const input = new TextDecoder().decode(bytes);
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir);
        writeFileSync(join(dir, 'tokenizer.json'), bytes);
        writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(base.tokenizerConfig));
        const start = performance.now();
        const outcome = await outcomeOf(() => HFTokenizer.fromDirectory(dir));
        if (outcome.error !== undefined) {
          checkThrown(outcome.error, 'tokenizer.json', input);
          if (preserving) throw new Error(`rejected a file whose meaning did not change: ${(outcome.error as Error).message}`);
          stats.rejected++;
          expect(outcome.ms).toBeLessThan(CASE_LIMIT_MS);
          return;
        }
        const tokenizer = outcome.value!;
        let parsed: unknown;
        try {
          parsed = JSON.parse(input);
        } catch {
          throw new Error(`loaded a tokenizer.json that is not JSON: ${input.slice(0, 200)}`);
        }
        const expected = expectedVocabulary(parsed, base.tokenizerConfig);
        if (!expected) throw new Error(`loaded a tokenizer.json without a readable vocabulary: ${input.slice(0, 300)}`);
        expect(tokenizer.vocabSize).toBe(expected.size);
        for (const [token, id] of expected.ids) {
          if (tokenizer.tokenToId(token) !== id) throw new Error(`token ${JSON.stringify(token)} reads as id ${tokenizer.tokenToId(token)}, the file says ${id}`);
        }
        for (const [id, token] of expected.byId) {
          if (tokenizer.idToToken(id) !== token) throw new Error(`id ${id} reads as ${JSON.stringify(tokenizer.idToToken(id))}, the file says ${JSON.stringify(token)}`);
        }
        for (const text of SAMPLES) {
          const ids = guarded(() => tokenizer.encode(text, { addSpecialTokens: false }), input);
          if (ids === undefined) {
            if (preserving) throw new Error(`could not encode ${JSON.stringify(text)} after an edit that keeps the meaning`);
            continue;
          }
          expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < tokenizer.vocabSize)).toBe(true);
          expect(tokenizer.encode(text, { addSpecialTokens: false })).toEqual(ids);
          const decoded = guarded(() => tokenizer.decode(ids), input);
          if (decoded !== undefined) expect(typeof decoded).toBe('string');
          guarded(() => tokenizer.encode(text), input);
          if (preserving) {
            expect([text, ids, decoded]).toEqual([text, reference[b]!.encode.get(text), reference[b]!.decode.get(text)]);
          }
        }
        expect(performance.now() - start).toBeLessThan(CASE_LIMIT_MS);
        stats.loaded++;
        if (preserving) stats.preserved++;
      }),
      { numRuns: RUNS },
    );
    expect(stats.loaded).toBeGreaterThan(RUNS * 0.15);
    expect(stats.rejected).toBeGreaterThan(RUNS * 0.15);
  }, fuzzTimeout(RUNS, 50));
});

describe('tokenizer.json checks, one by one (what the fuzz relies on)', () => {
  const base = byteLevelBpeFiles();
  const withModel = (patch: Json) => ({ ...base.tokenizerJson, model: { ...(base.tokenizerJson.model as Json), ...patch } });
  const vocab = (base.tokenizerJson.model as Json).vocab as Record<string, number>;
  const load = (json: unknown) => () => HFTokenizer.fromJSON(json, base.tokenizerConfig, { source: '/m/tokenizer.json' });

  it('names tokenizer.json and the cause for each malformed vocabulary, merge, flag and added token', () => {
    expect(load(withModel({ vocab: { ...vocab, x: 1.5 } }))).toThrow(/^\/m\/tokenizer\.json: tokenizer\.json model\.vocab\["x"\] must be an integer id in \[0, 2147483646\], got 1\.5/);
    expect(load(withModel({ vocab: { ...vocab, x: 5 } }))).toThrow(/model\.vocab gives id 5 to both .* and "x"; ids must be unique/);
    expect(load(withModel({ merges: [['Ġ', 'q']] }))).toThrow(/model\.merges\[0\] \["Ġ","q"\] needs "Ġq", which the vocab lacks/);
    expect(load(withModel({ merges: ['Ġ t x'] }))).toThrow(/model\.merges\[0\] must be a string "a b" of two tokens like merges\[0\], got "Ġ t x"/);
    expect(load(withModel({ continuing_subword_prefix: '##' }))).toThrow(/continuing_subword_prefix "##" is not supported by @huggingface\/tokenizers/);
    expect(load({ ...base.tokenizerJson, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: 'false' } })).toThrow(
      /tokenizer\.json pre_tokenizer\.add_prefix_space must be true or false, got "false"/,
    );
    const added = base.tokenizerJson.added_tokens as Json[];
    const first = added[0]!;
    expect(load({ ...base.tokenizerJson, added_tokens: [...added, { ...first, content: 'other' }] })).toThrow(
      /gives id 261 to the added token "other" and to the vocabulary's "<\|endoftext\|>"/,
    );
    expect(load({ ...base.tokenizerJson, added_tokens: [{ ...first, id: 2 ** 31 }] })).toThrow(/id 2147483648 is above 2147483646/);
    expect(load(withModel({ type: undefined }))).toThrow(/model\.type must be "BPE", "WordPiece" or "Unigram", got undefined/);
  });

  it('bounds nesting, reads UTF-8 strictly, and wraps what the library throws', async () => {
    const deep = JSON.parse(`${'['.repeat(5000)}1${']'.repeat(5000)}`);
    expect(load({ ...base.tokenizerJson, extra: deep })).toThrow(/tokenizer\.json is nested more than 128 levels deep/);
    expect(load({ ...base.tokenizerJson, decoder: { type: 'Mystery' } })).toThrow(
      /^\/m\/tokenizer\.json: @huggingface\/tokenizers could not build the tokenizer \(Unknown Decoder type: Mystery\); check that tokenizer\.json/,
    );
    const dir = mkdtempSync(join(tmpdir(), 'chimera-tokenizer-utf8-'));
    try {
      const text = JSON.stringify(base.tokenizerJson);
      const bytes = new TextEncoder().encode(text);
      bytes[text.indexOf('"he"') + 1] = 0xff; // a token's first byte
      writeFileSync(join(dir, 'tokenizer.json'), bytes);
      await expect(HFTokenizer.fromDirectory(dir)).rejects.toThrow(/tokenizer\.json is not valid UTF-8/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
