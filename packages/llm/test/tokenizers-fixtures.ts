// Small HF tokenizer files written by the tests themselves (no network): a GPT-2-style byte-level BPE with a
// ChatML template, and a Llama-2-style SentencePiece BPE (Metaspace, byte fallback, BOS template).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as nodePath from 'node:path';

/** GPT-2's bytes_to_unicode, written out here independently of the library code. */
export function gpt2ByteChars(): string[] {
  const kept: number[] = [];
  for (let b = 33; b <= 126; b++) kept.push(b);
  for (let b = 161; b <= 172; b++) kept.push(b);
  for (let b = 174; b <= 255; b++) kept.push(b);
  const chars: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++)
    chars[b] = kept.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  return chars;
}

export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** GPT-2-style byte-level BPE. Vocab ids follow GPT-2's order (printable bytes first), so id != byte value. */
export function byteLevelBpeFiles(): {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  vocab: Record<string, number>;
} {
  const chars = gpt2ByteChars();
  const order = [...chars].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  const vocab: Record<string, number> = {};
  order.forEach((char, i) => (vocab[char] = i));
  const merges: [string, string][] = [
    ['Ġ', 't'],
    ['h', 'e'],
    ['Ġt', 'he'],
    ['l', 'l'],
    ['he', 'll'],
  ];
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  const base = Object.keys(vocab).length; // 261
  const added = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'].map((content, i) => ({
    id: base + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    vocab,
    tokenizerJson: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: byteLevel,
      decoder: byteLevel,
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges,
      },
    },
    tokenizerConfig: {
      tokenizer_class: 'PreTrainedTokenizerFast',
      bos_token: null,
      eos_token: '<|im_end|>',
      pad_token: '<|endoftext|>',
      clean_up_tokenization_spaces: false,
      chat_template: CHATML_TEMPLATE,
    },
  };
}

/** Llama-2-style SentencePiece BPE: <unk>, <s>, </s>, 256 byte tokens, then pieces; BOS added by the template. */
export function sentencePieceBpeFiles(): {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  vocab: Record<string, number>;
} {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  for (const piece of ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', 'a', 't']) vocab[piece] = Object.keys(vocab).length;
  const merges: [string, string][] = [
    ['▁', 'h'],
    ['l', 'l'],
    ['▁h', 'e'],
    ['▁he', 'll'],
    ['▁', 'w'],
  ];
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    vocab,
    tokenizerJson: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
      normalizer: {
        type: 'Sequence',
        normalizers: [
          { type: 'Prepend', prepend: '▁' },
          { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
        ],
      },
      pre_tokenizer: null,
      post_processor: {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [
          { SpecialToken: { id: '<s>', type_id: 0 } },
          { Sequence: { id: 'A', type_id: 0 } },
          { SpecialToken: { id: '<s>', type_id: 1 } },
          { Sequence: { id: 'B', type_id: 1 } },
        ],
        special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
      },
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
          { type: 'Strip', content: ' ', start: 1, stop: 0 },
        ],
      },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: '<unk>',
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: true,
        byte_fallback: true,
        ignore_merges: false,
        vocab,
        merges,
      },
    },
    tokenizerConfig: {
      tokenizer_class: 'LlamaTokenizer',
      bos_token: '<s>',
      eos_token: '</s>',
      unk_token: '<unk>',
      pad_token: null,
      add_bos_token: true,
      add_eos_token: false,
      clean_up_tokenization_spaces: false,
    },
  };
}

/** Writes the given files (objects as JSON, strings verbatim) into a fresh temp directory. */
export function writeTempDir(files: Record<string, unknown>): string {
  const dir = mkdtempSync(nodePath.join(tmpdir(), 'chimera-tok-'));
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(nodePath.join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}
