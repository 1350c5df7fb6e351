import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ByteTokenizer, BYTE_VOCAB_SIZE } from '../src/tokenizers/byte-tokenizer';
import { HFTokenizer } from '../src/tokenizers/hf-tokenizer';

const utf8 = (text: string) => Array.from(new TextEncoder().encode(text));

describe('ByteTokenizer', () => {
  it('encodes text as its UTF-8 bytes and puts the default specials after them', () => {
    const tokenizer = new ByteTokenizer();
    expect(tokenizer.encode('aé😀')).toEqual([0x61, 0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80]);
    expect([tokenizer.bosTokenId, tokenizer.eosTokenId, tokenizer.padTokenId]).toEqual([256, 257, 258]);
    expect(tokenizer.vocabSize).toBe(259);
    expect([...tokenizer.specialTokens]).toEqual([
      ['<s>', 256],
      ['</s>', 257],
      ['<pad>', 258],
    ]);
  });

  it('round-trips random Unicode text (every code point, incl. a leading BOM)', () => {
    const tokenizer = new ByteTokenizer();
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (text) => {
        const ids = tokenizer.encode(text);
        expect(ids).toEqual(utf8(text));
        expect(tokenizer.decode(ids)).toBe(text);
      }),
      { numRuns: 300 },
    );
    expect(tokenizer.decode(tokenizer.encode('\uFEFFx'))).toBe('\uFEFFx');
  });

  it('splits out special tokens by exact match, longest first, and round-trips them', () => {
    const tokenizer = new ByteTokenizer({ additionalSpecialTokens: ['<image>', '<im', '<image-newline>'] });
    const [image, im, newline] = ['<image>', '<im', '<image-newline>'].map((t) => tokenizer.tokenToId(t)!);
    expect([image, im, newline]).toEqual([259, 260, 261]);
    const text = 'a<image-newline><image><imx</s><s';
    const ids = tokenizer.encode(text);
    expect(ids).toEqual([0x61, newline, image, im, 0x78, 257, ...utf8('<s')]);
    expect(tokenizer.decode(ids)).toBe(text);
    expect(tokenizer.decode(ids, { skipSpecialTokens: true })).toBe('ax<s');
    // Random mixtures of specials and text round-trip too.
    const pieces = fc.oneof(
      fc.constantFrom('<image>', '<im', '<image-newline>', '<s>', '</s>', '<'),
      fc.string({ unit: 'grapheme', maxLength: 5 }),
    );
    fc.assert(
      fc.property(fc.array(pieces, { maxLength: 8 }), (parts) => {
        const joined = parts.join('');
        expect(tokenizer.decode(tokenizer.encode(joined))).toBe(joined);
      }),
      { numRuns: 200 },
    );
  });

  it('adds BOS/EOS only when asked to', () => {
    const tokenizer = new ByteTokenizer({ addBosToken: true, addEosToken: true });
    expect(tokenizer.encode('hi')).toEqual([256, 0x68, 0x69, 257]);
    expect(tokenizer.encode('hi', { addSpecialTokens: false })).toEqual([0x68, 0x69]);
    expect(new ByteTokenizer().encode('hi')).toEqual([0x68, 0x69]);
    const bare = new ByteTokenizer({ bosToken: null, eosToken: null, padToken: null });
    expect(bare.vocabSize).toBe(BYTE_VOCAB_SIZE);
    expect(bare.bosTokenId).toBeUndefined();
    expect(bare.encode('<s>')).toEqual(utf8('<s>'));
  });

  it('decodes invalid UTF-8 to U+FFFD without throwing', () => {
    const tokenizer = new ByteTokenizer();
    expect(tokenizer.decode([0xff])).toBe('\uFFFD');
    expect(tokenizer.decode([0x61, 0xc3])).toBe('a\uFFFD'); // truncated 2-byte sequence
    expect(tokenizer.decode([0xc3, 0x61])).toBe('\uFFFDa'); // missing continuation byte
    expect(tokenizer.decode([0xe2, 0x82, 256, 0x62])).toBe('\uFFFD<s>b'); // cut by a special token
    expect(tokenizer.decode([0xed, 0xa0, 0x80])).toMatch(/^\uFFFD+$/); // an encoded surrogate is invalid
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 258 }), { maxLength: 30 }), (ids) => {
        expect(typeof tokenizer.decode(ids)).toBe('string');
      }),
    );
  });

  it('rejects ids outside the vocabulary with a clear error', () => {
    const tokenizer = new ByteTokenizer();
    expect(() => tokenizer.decode([1, 259])).toThrow(/id 259 at position 1 is outside the vocabulary \[0, 259\)/);
    expect(() => tokenizer.decode([-1])).toThrow(/outside the vocabulary/);
    expect(() => tokenizer.decode([1.5])).toThrow(/outside the vocabulary/);
  });

  it('maps tokens and ids both ways', () => {
    const tokenizer = new ByteTokenizer();
    expect(tokenizer.idToToken(0x41)).toBe('A');
    expect(tokenizer.idToToken(0x0a)).toBe('<0x0A>');
    expect(tokenizer.idToToken(0xc3)).toBe('<0xC3>');
    expect(tokenizer.idToToken(257)).toBe('</s>');
    expect(tokenizer.idToToken(9999)).toBeUndefined();
    expect(tokenizer.tokenToId('A')).toBe(0x41);
    expect(tokenizer.tokenToId('<0x0A>')).toBe(0x0a);
    expect(tokenizer.tokenToId('<pad>')).toBe(258);
    expect(tokenizer.tokenToId('nope')).toBeUndefined();
    for (let id = 0; id < tokenizer.vocabSize; id++) expect(tokenizer.tokenToId(tokenizer.idToToken(id)!)).toBe(id);
  });

  it('addTokens appends new ids, keeps existing ones, and matches added tokens in text', () => {
    const tokenizer = new ByteTokenizer();
    expect(tokenizer.addTokens(['<image>', 'A', '<s>', '<image>', 'hello'], { special: false })).toEqual([
      259, 0x41, 256, 259, 260,
    ]);
    expect(tokenizer.vocabSize).toBe(261);
    expect(tokenizer.encode('say hello<image>')).toEqual([...utf8('say '), 260, 259]);
    // Non-special tokens survive skipSpecialTokens; promoting one to special makes it skippable.
    expect(tokenizer.decode([260, 259, 256], { skipSpecialTokens: true })).toBe('hello<image>');
    expect(tokenizer.addTokens(['<image>'], { special: true })).toEqual([259]);
    expect(tokenizer.decode([260, 259], { skipSpecialTokens: true })).toBe('hello');
    expect(() => tokenizer.addTokens([''])).toThrow(/non-empty string/);
  });

  it('exports HF files that @huggingface/tokenizers encodes and decodes identically', () => {
    const tokenizer = new ByteTokenizer({ additionalSpecialTokens: ['<image>'], addBosToken: true });
    tokenizer.addTokens(['hello']);
    const { tokenizerJson, tokenizerConfig } = tokenizer.toHFFiles();
    const hf = HFTokenizer.fromJSON(
      JSON.parse(JSON.stringify(tokenizerJson)),
      JSON.parse(JSON.stringify(tokenizerConfig)),
    );
    expect(hf.vocabSize).toBe(tokenizer.vocabSize);
    expect(hf.bosTokenId).toBe(tokenizer.bosTokenId);
    const pieces = fc.oneof(
      fc.constantFrom('<image>', '<s>', 'hello', ' '),
      fc.string({ unit: 'grapheme', maxLength: 6 }),
    );
    fc.assert(
      fc.property(fc.array(pieces, { maxLength: 6 }), (parts) => {
        const text = parts.join('');
        const ids = tokenizer.encode(text);
        expect(hf.encode(text)).toEqual(ids);
        expect(hf.decode(ids)).toBe(tokenizer.decode(ids));
        expect(hf.decode(ids, { skipSpecialTokens: true })).toBe(tokenizer.decode(ids, { skipSpecialTokens: true }));
      }),
      { numRuns: 150 },
    );
  });
});

describe('ByteTokenizer.save', () => {
  it('writes HF files that HFTokenizer loads back with the same encoding', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'byte-tok-'));
    const original = new ByteTokenizer();
    original.addTokens(['<image>'], { special: true });
    await original.save(dir);
    const loaded = await HFTokenizer.fromDirectory(dir);
    const text = 'héllo <image> wörld 🙂';
    expect(loaded.encode(text, { addSpecialTokens: false })).toEqual(original.encode(text, { addSpecialTokens: false }));
    expect(loaded.vocabSize).toBe(original.vocabSize);
  });
});
