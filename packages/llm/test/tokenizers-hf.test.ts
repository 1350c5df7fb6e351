import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import * as nodePath from 'node:path';
import { HFTokenizer } from '../src/tokenizers/hf-tokenizer';
import { byteLevelBpeFiles, sentencePieceBpeFiles, writeTempDir, CHATML_TEMPLATE } from './tokenizers-fixtures';

const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

describe('HFTokenizer: byte-level BPE (GPT-2 style)', () => {
  const files = byteLevelBpeFiles();
  const dir = writeTempDir({ 'tokenizer.json': files.tokenizerJson, 'tokenizer_config.json': files.tokenizerConfig });

  it('loads from a directory and applies the merges', async () => {
    const tokenizer = await HFTokenizer.fromDirectory(dir);
    expect(tokenizer.vocabSize).toBe(264); // 256 bytes + 5 merges + 3 added tokens
    const expectedTokens = ['hell', 'o', 'Ġthe', 'Ġ', 'w', 'o', 'r', 'l', 'd'];
    const ids = tokenizer.encode('hello the world');
    expect(ids).toEqual(expectedTokens.map((token) => files.vocab[token]));
    expect(ids.map((id) => tokenizer.idToToken(id))).toEqual(expectedTokens);
    expect(tokenizer.tokenToId('Ġthe')).toBe(files.vocab['Ġthe']);
    expect(tokenizer.decode(ids)).toBe('hello the world');
    expect(tokenizer.decode([])).toBe('');
  });

  it('reads the special tokens and the chat template from tokenizer_config.json', async () => {
    const tokenizer = await HFTokenizer.fromDirectory(dir);
    expect(tokenizer.bosTokenId).toBeUndefined();
    expect(tokenizer.eosToken).toBe('<|im_end|>');
    expect([tokenizer.padTokenId, tokenizer.eosTokenId]).toEqual([261, 263]);
    expect([...tokenizer.specialTokens]).toEqual([
      ['<|endoftext|>', 261],
      ['<|im_start|>', 262],
      ['<|im_end|>', 263],
    ]);
    expect(tokenizer.chatTemplate).toBe(CHATML_TEMPLATE);
  });

  it('round-trips random Unicode text with special tokens in it', async () => {
    const tokenizer = await HFTokenizer.fromDirectory(dir);
    const pieces = fc.oneof(
      fc.constantFrom('<|im_start|>', '<|im_end|>', '<|endoftext|>', ' the', 'hello'),
      fc.string({ unit: 'binary', maxLength: 8 }),
    );
    fc.assert(
      fc.property(fc.array(pieces, { maxLength: 6 }), (parts) => {
        const text = parts.join('');
        const ids = tokenizer.encode(text);
        expect(tokenizer.decode(ids)).toBe(text);
        const withoutSpecials = text.replace(/<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>/g, '');
        expect(tokenizer.decode(ids, { skipSpecialTokens: true })).toBe(withoutSpecials);
      }),
      { numRuns: 200 },
    );
  });

  it('splits special tokens out of the text as single ids', async () => {
    const tokenizer = await HFTokenizer.fromDirectory(dir);
    const ids = tokenizer.encode('<|im_start|>user\nhello<|im_end|>');
    expect(ids[0]).toBe(262);
    expect(ids[ids.length - 1]).toBe(263);
    expect(ids.filter((id) => id >= 261)).toHaveLength(2);
  });

  it('adds tokens after the vocabulary, keeps existing ids, matches them in text, and saves them', async () => {
    const tokenizer = await HFTokenizer.fromDirectory(dir);
    const ids = tokenizer.addTokens(['<image>', 'Ġthe', '<|im_end|>', '<image>', 'cat'], { special: false });
    expect(ids).toEqual([264, files.vocab['Ġthe'], 263, 264, 265]);
    expect(tokenizer.vocabSize).toBe(266);
    expect(tokenizer.encode('a<image>cat')).toEqual([files.vocab['a'], 264, 265]);
    expect(tokenizer.decode([264, 265, 263], { skipSpecialTokens: true })).toBe('<image>cat');
    expect(tokenizer.addTokens(['<image>'], { special: true })).toEqual([264]);
    expect(tokenizer.decode([264, 265], { skipSpecialTokens: true })).toBe('cat');
    // A vocabulary token made special keeps its id and is then matched whole and skipped.
    expect(tokenizer.addTokens(['hell'], { special: true })).toEqual([files.vocab['hell']]);
    expect(tokenizer.vocabSize).toBe(266);
    expect(tokenizer.encode('shell')).toEqual([files.vocab['s'], files.vocab['hell']]);
    expect(tokenizer.decode(tokenizer.encode('shello'), { skipSpecialTokens: true })).toBe('so');

    const saved = writeTempDir({});
    await tokenizer.save(saved);
    const config = JSON.parse(readFileSync(nodePath.join(saved, 'tokenizer_config.json'), 'utf8'));
    expect(config.added_tokens_decoder['264']).toMatchObject({ content: '<image>', special: true });
    expect(config.chat_template).toBe(CHATML_TEMPLATE);
    const reloaded = await HFTokenizer.fromDirectory(saved);
    expect(reloaded.vocabSize).toBe(266);
    const text = 'x<image> the cat<|im_end|>';
    expect(reloaded.encode(text)).toEqual(tokenizer.encode(text));
    expect(reloaded.decode(reloaded.encode(text), { skipSpecialTokens: true })).toBe('x the cat');
  });

  it('takes tokens listed only in added_tokens_decoder, and rejects files that disagree', () => {
    const config = {
      ...clone(files.tokenizerConfig),
      added_tokens_decoder: { '264': { content: '<video>', special: true } },
    };
    const tokenizer = HFTokenizer.fromJSON(clone(files.tokenizerJson), config);
    expect(tokenizer.tokenToId('<video>')).toBe(264);
    expect(tokenizer.encode('<video>')).toEqual([264]);
    expect(tokenizer.specialTokens.get('<video>')).toBe(264);
    const conflicting = {
      ...clone(files.tokenizerConfig),
      added_tokens_decoder: { '261': { content: '<other>', special: true } },
    };
    expect(() => HFTokenizer.fromJSON(clone(files.tokenizerJson), conflicting)).toThrow(
      /id 261 is "<\|endoftext\|>" in tokenizer.json but "<other>"/,
    );
  });

  it('uses chat_template.jinja over the template in tokenizer_config.json', async () => {
    const template = '{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}';
    const withJinja = writeTempDir({
      'tokenizer.json': files.tokenizerJson,
      'tokenizer_config.json': files.tokenizerConfig,
      'chat_template.jinja': template,
    });
    const tokenizer = await HFTokenizer.fromDirectory(withJinja);
    expect(tokenizer.chatTemplate).toBe(template);
  });
});

describe('HFTokenizer: SentencePiece-style BPE (Llama 2 style)', () => {
  const files = sentencePieceBpeFiles();
  const v = files.vocab;

  it('adds BOS through the template, prepends the word marker and falls back to bytes', () => {
    const tokenizer = HFTokenizer.fromJSON(clone(files.tokenizerJson), clone(files.tokenizerConfig));
    expect([tokenizer.bosTokenId, tokenizer.eosTokenId, tokenizer.unkTokenId, tokenizer.padTokenId]).toEqual([
      1,
      2,
      0,
      undefined,
    ]);
    expect(tokenizer.encode('hello world')).toEqual([1, v['▁hell'], v['o'], v['▁w'], v['o'], v['r'], v['l'], v['d']]);
    expect(tokenizer.encode('hé', { addSpecialTokens: false })).toEqual([v['▁h'], v['<0xC3>'], v['<0xA9>']]);
    expect(tokenizer.decode(tokenizer.encode('hello world'), { skipSpecialTokens: true })).toBe('hello world');
  });

  it('round-trips random text', () => {
    const tokenizer = HFTokenizer.fromJSON(clone(files.tokenizerJson), clone(files.tokenizerConfig));
    const text = fc
      .string({ unit: 'binary', maxLength: 16 })
      .filter((s) => !s.includes('▁') && !/<\/?s>|<unk>/.test(s));
    fc.assert(
      fc.property(text, (s) => {
        expect(tokenizer.decode(tokenizer.encode(s, { addSpecialTokens: false }))).toBe(s);
        expect(tokenizer.decode(tokenizer.encode(s), { skipSpecialTokens: true })).toBe(s);
      }),
      { numRuns: 200 },
    );
  });

  it('follows add_bos_token / add_eos_token over the post-processor', () => {
    const noBos = HFTokenizer.fromJSON(clone(files.tokenizerJson), {
      ...clone(files.tokenizerConfig),
      add_bos_token: false,
    });
    expect(noBos.encode('hello')).toEqual([v['▁hell'], v['o']]);
    const both = HFTokenizer.fromJSON(clone(files.tokenizerJson), {
      ...clone(files.tokenizerConfig),
      add_eos_token: true,
    });
    expect(both.encode('hello')).toEqual([1, v['▁hell'], v['o'], 2]);
    expect(both.encode('hello', { addSpecialTokens: false })).toEqual([v['▁hell'], v['o']]);
  });

  it('adds a configured special token that the vocabulary lacks', () => {
    const tokenizer = HFTokenizer.fromJSON(clone(files.tokenizerJson), {
      ...clone(files.tokenizerConfig),
      pad_token: { content: '<pad>', __type: 'AddedToken' },
    });
    const base = Object.keys(v).length;
    expect(tokenizer.padTokenId).toBe(base);
    expect(tokenizer.vocabSize).toBe(base + 1);
    expect(tokenizer.specialTokens.get('<pad>')).toBe(base);
  });
});

describe('HFTokenizer errors', () => {
  const files = byteLevelBpeFiles();

  it('says what is wrong with a missing directory or file', async () => {
    await expect(HFTokenizer.fromDirectory('/nonexistent/chimera-tokenizer')).rejects.toThrow(/is not a directory/);
    const slow = writeTempDir({ 'vocab.json': {}, 'merges.txt': '#version: 0.2\n' });
    await expect(HFTokenizer.fromDirectory(slow)).rejects.toThrow(
      /has no tokenizer.json \(it has .*vocab.json.*slow-tokenizer format\)/,
    );
    await expect(HFTokenizer.fromDirectory(writeTempDir({}))).rejects.toThrow(/has no tokenizer.json/);
  });

  it('says which file is corrupt', async () => {
    const badTokenizer = writeTempDir({ 'tokenizer.json': '{"model": {"type": "BPE", ' });
    await expect(HFTokenizer.fromDirectory(badTokenizer)).rejects.toThrow(/tokenizer.json is not valid JSON/);
    const badConfig = writeTempDir({ 'tokenizer.json': files.tokenizerJson, 'tokenizer_config.json': 'not json' });
    await expect(HFTokenizer.fromDirectory(badConfig)).rejects.toThrow(/tokenizer_config.json is not valid JSON/);
    const arrayConfig = writeTempDir({ 'tokenizer.json': files.tokenizerJson, 'tokenizer_config.json': '[1]' });
    await expect(HFTokenizer.fromDirectory(arrayConfig)).rejects.toThrow(/must hold a JSON object, got an array/);
  });

  it('rejects tokenizer.json contents the library cannot build', () => {
    expect(() => HFTokenizer.fromJSON({ version: '1.0' })).toThrow(/no "model" object/);
    expect(() => HFTokenizer.fromJSON({ model: { type: 'Mystery' } })).toThrow(
      /could not build the tokenizer \(Unknown TokenizerModel type: Mystery\)/,
    );
    expect(() =>
      HFTokenizer.fromJSON({ ...clone(files.tokenizerJson), added_tokens: [{ id: -1, content: 'x' }] }),
    ).toThrow(/added_tokens\[0\] needs an integer id/);
    expect(() => HFTokenizer.fromJSON(clone(files.tokenizerJson), { bos_token: 5 })).toThrow(
      /bos_token must be a string/,
    );
  });

  it('rejects ids outside the vocabulary', () => {
    const tokenizer = HFTokenizer.fromJSON(clone(files.tokenizerJson), clone(files.tokenizerConfig));
    expect(() => tokenizer.decode([0, 264])).toThrow(/id 264 at position 1 is outside the vocabulary \[0, 264\)/);
  });

  it('refuses text a Unigram model without unk_id cannot represent (the library gives its piece a null id)', () => {
    const json = {
      model: { type: 'Unigram', unk_id: null, vocab: [['a', -1], ['b', -2]], byte_fallback: false },
      normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [],
    };
    const tokenizer = HFTokenizer.fromJSON(json, {});
    expect(tokenizer.encode('ab', { addSpecialTokens: false })).toEqual([0, 1]);
    expect(() => tokenizer.encode('abz', { addSpecialTokens: false })).toThrow(/piece "z" has no id .* has no unk token/);
  });
});
