import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { StreamDecoder } from '../src/tokenizers/stream-decoder';
import { ByteTokenizer } from '../src/tokenizers/byte-tokenizer';
import { HFTokenizer } from '../src/tokenizers/hf-tokenizer';
import { byteLevelBpeFiles, sentencePieceBpeFiles } from './tokenizers-fixtures';

/** Text of random code points with emoji and CJK mixed in. */
const mixedText = fc
  .array(
    fc.oneof(
      fc.string({ unit: 'binary', maxLength: 4 }),
      fc.constantFrom('😀', '中文', '👩‍👩‍👧', 'é', '\u{10FFFF}', ' ', '\n'),
    ),
    { maxLength: 10 },
  )
  .map((parts) => parts.join(''));

/** For each byte count, the text of the whole characters within the first `n` bytes (computed per code point). */
function completedPrefixes(text: string): string[] {
  const prefixes: string[] = [''];
  let done = '';
  for (const char of text) {
    const length = new TextEncoder().encode(char).length;
    for (let i = 1; i < length; i++) prefixes.push(done);
    done += char;
    prefixes.push(done);
  }
  return prefixes;
}

describe('StreamDecoder', () => {
  it('emits each character as soon as its last byte arrives, and never half of one (ByteTokenizer)', () => {
    const tokenizer = new ByteTokenizer();
    fc.assert(
      fc.property(mixedText, (text) => {
        const ids = tokenizer.encode(text);
        const expectedAfter = completedPrefixes(text);
        const stream = new StreamDecoder(tokenizer);
        let out = '';
        ids.forEach((id, i) => {
          const piece = stream.push(id);
          expect(piece).not.toContain('\uFFFD');
          out += piece;
          expect(out).toBe(expectedAfter[i + 1]);
        });
        expect(out + stream.flush()).toBe(text);
      }),
      { numRuns: 200 },
    );
  });

  it('gives the full decode for a text split into two feeds at every byte position', () => {
    const tokenizer = new ByteTokenizer({ additionalSpecialTokens: ['<image>'] });
    const text = 'a中<image>😀 é👩‍👩‍👧</s>b';
    const ids = tokenizer.encode(text);
    const stream = new StreamDecoder(tokenizer);
    for (let split = 0; split <= ids.length; split++) {
      const out = stream.pushAll(ids.slice(0, split)) + stream.pushAll(ids.slice(split)) + stream.flush();
      expect(out).toBe(text);
    }
  });

  it('holds back an unfinished character and flushes it as U+FFFD; invalid bytes match the full decode', () => {
    const tokenizer = new ByteTokenizer();
    const stream = new StreamDecoder(tokenizer);
    expect([0x61, 0xe4, 0xb8].map((id) => stream.push(id))).toEqual(['a', '', '']);
    expect(stream.flush()).toBe('\uFFFD');
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 258 }), { maxLength: 24 }), (ids) => {
        const fresh = new StreamDecoder(tokenizer);
        expect(fresh.pushAll(ids) + fresh.flush()).toBe(tokenizer.decode(ids));
      }),
      { numRuns: 300 },
    );
  });

  it('matches the full decode for a byte-level BPE whose tokens split characters', () => {
    const files = byteLevelBpeFiles();
    const tokenizer = HFTokenizer.fromJSON(files.tokenizerJson, files.tokenizerConfig);
    const withSpecials = fc
      .array(fc.oneof(mixedText, fc.constantFrom('<|im_start|>', '<|im_end|>', 'hello the')), { maxLength: 5 })
      .map((parts) => parts.join(''));
    fc.assert(
      fc.property(withSpecials, fc.boolean(), (text, skipSpecialTokens) => {
        const ids = tokenizer.encode(text);
        const stream = new StreamDecoder(tokenizer, { skipSpecialTokens });
        const pieces = ids.map((id) => stream.push(id));
        for (const piece of pieces) expect(piece).not.toContain('\uFFFD');
        expect(pieces.join('') + stream.flush()).toBe(tokenizer.decode(ids, { skipSpecialTokens }));
      }),
      { numRuns: 150 },
    );
  });

  it('keeps word-initial spaces right for a SentencePiece-style decoder', () => {
    const files = sentencePieceBpeFiles();
    const tokenizer = HFTokenizer.fromJSON(files.tokenizerJson, files.tokenizerConfig);
    const ids = tokenizer.encode('hello world 中 hello');
    const stream = new StreamDecoder(tokenizer, { skipSpecialTokens: true });
    const pieces = ids.map((id) => stream.push(id));
    expect(pieces.join('') + stream.flush()).toBe('hello world 中 hello');
    expect(pieces).toContain(' w');
    const text = fc
      .string({ unit: 'binary', maxLength: 12 })
      .filter((s) => !s.includes('▁') && !/<\/?s>|<unk>/.test(s));
    fc.assert(
      fc.property(text, (s) => {
        const sample = tokenizer.encode(s);
        const fresh = new StreamDecoder(tokenizer, { skipSpecialTokens: true });
        expect(fresh.pushAll(sample) + fresh.flush()).toBe(s);
      }),
      { numRuns: 150 },
    );
  });

  it('starts over after flush and reset', () => {
    const tokenizer = new ByteTokenizer();
    const stream = new StreamDecoder(tokenizer);
    stream.pushAll([0xe4, 0xb8]);
    stream.reset();
    expect(stream.pushAll(tokenizer.encode('ok'))).toBe('ok');
    expect(stream.flush()).toBe('');
    expect(stream.pushAll(tokenizer.encode('中'))).toBe('中');
  });
});
