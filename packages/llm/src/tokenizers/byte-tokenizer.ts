// Byte-level tokenizer that needs no files: ids 0..255 are the UTF-8 bytes, added and special tokens follow
// (the ByT5 vocabulary, Xue et al. 2022, "ByT5: Towards a token-free future with pre-trained byte-to-byte models").
import type { ChatMessage, TokenizerChatOptions } from './chat-template';
import { writeTokenizerFiles, type HFTokenizerFiles } from './tokenizer-files';
import { encodeChat, normalizeChatTemplates } from './chat-template';
import {
  assertTokenIds,
  assertTokenStrings,
  type AddTokensOptions,
  type DecodeOptions,
  type EncodeOptions,
  type TextTokenizer,
} from './tokenizer';

/** Ids 0..255 are the UTF-8 bytes; added and special tokens start at this id. */
export const BYTE_VOCAB_SIZE = 256;

/** Options of {@link ByteTokenizer}. */
export interface ByteTokenizerOptions {
  /** Begin-of-sequence token; null for none. Default `<s>`. */
  bosToken?: string | null;
  /** End-of-sequence token; null for none. Default `</s>`. */
  eosToken?: string | null;
  /** Padding token; null for none. Default `<pad>`. */
  padToken?: string | null;
  /** More special tokens, added after BOS, EOS and pad (e.g. media markers). */
  additionalSpecialTokens?: readonly string[];
  /** Prepend BOS when encoding with addSpecialTokens. Default false. */
  addBosToken?: boolean;
  /** Append EOS when encoding with addSpecialTokens. Default false. */
  addEosToken?: boolean;
  /** A Jinja chat template (or named templates with a `default`). */
  chatTemplate?: string | Readonly<Record<string, string>>;
}

/** The contents of an HF tokenizer.json and tokenizer_config.json that encode exactly like a ByteTokenizer. */
function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A byte's token string: the character for printable ASCII (and space), `<0xNN>` otherwise. */
function byteToken(byte: number): string {
  return byte >= 0x20 && byte <= 0x7e
    ? String.fromCharCode(byte)
    : `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
}

function parseByteToken(token: string): number | undefined {
  if (token.length === 1) {
    const code = token.charCodeAt(0);
    return code >= 0x20 && code <= 0x7e ? code : undefined;
  }
  const match = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
  return match ? parseInt(match[1]!, 16) : undefined;
}

/** GPT-2's reversible map from bytes to printable characters, which HF's ByteLevel pre-tokenizer uses. */
function gpt2ByteToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const chars = new Array<string>(256);
  for (const b of printable) chars[b] = String.fromCharCode(b);
  let next = 256;
  for (let b = 0; b < 256; b++) if (chars[b] === undefined) chars[b] = String.fromCharCode(next++);
  return chars;
}

/**
 * A byte-level tokenizer that needs no files: ids 0..255 are the UTF-8 bytes, special and added tokens follow (ByT5's
 * vocabulary). Savable as HF tokenizer files that encode identically.
 */
export class ByteTokenizer implements TextTokenizer {
  /** Beginning-of-sequence token string, if any. */
  readonly bosToken: string | undefined;
  /** End-of-sequence token string, if any. */
  readonly eosToken: string | undefined;
  /** Padding token string, if any. */
  readonly padToken: string | undefined;
  /** Whether `encode` prepends BOS when adding special tokens. */
  readonly addBosToken: boolean;
  /** Whether `encode` appends EOS when adding special tokens. */
  readonly addEosToken: boolean;
  private readonly templates: Record<string, string>;
  /** Added tokens in id order: addedTokens[i] has id 256 + i. */
  private readonly addedTokens: string[] = [];
  private readonly addedIds = new Map<string, number>();
  private readonly specialIds = new Set<number>();
  private specialMap = new Map<string, number>();
  /** Matches any added token, longest first; null when there are none. */
  private splitter: RegExp | null = null;
  private readonly utf8Encoder = new TextEncoder();
  // ignoreBOM keeps a leading U+FEFF in the text instead of swallowing it; invalid bytes become U+FFFD.
  private readonly utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

  constructor(options: ByteTokenizerOptions = {}) {
    const bos = options.bosToken === undefined ? '<s>' : options.bosToken;
    const eos = options.eosToken === undefined ? '</s>' : options.eosToken;
    const pad = options.padToken === undefined ? '<pad>' : options.padToken;
    const specials = [bos, eos, pad, ...(options.additionalSpecialTokens ?? [])].filter(
      (token): token is string => token !== null,
    );
    assertTokenStrings(specials, 'ByteTokenizer');
    this.addTokens(specials, { special: true });
    this.bosToken = bos ?? undefined;
    this.eosToken = eos ?? undefined;
    this.padToken = pad ?? undefined;
    this.addBosToken = options.addBosToken ?? false;
    this.addEosToken = options.addEosToken ?? false;
    if ((this.addBosToken && !this.bosToken) || (this.addEosToken && !this.eosToken)) {
      throw new Error('ByteTokenizer: addBosToken / addEosToken need a bosToken / eosToken; do not set them to null');
    }
    this.templates = normalizeChatTemplates(options.chatTemplate, 'ByteTokenizer');
  }

  get vocabSize(): number {
    return BYTE_VOCAB_SIZE + this.addedTokens.length;
  }

  get bosTokenId(): number | undefined {
    return this.bosToken === undefined ? undefined : this.tokenToId(this.bosToken);
  }

  get eosTokenId(): number | undefined {
    return this.eosToken === undefined ? undefined : this.tokenToId(this.eosToken);
  }

  get padTokenId(): number | undefined {
    return this.padToken === undefined ? undefined : this.tokenToId(this.padToken);
  }

  get specialTokens(): ReadonlyMap<string, number> {
    return this.specialMap;
  }

  get chatTemplate(): string | undefined {
    return this.templates['default'];
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new Error(`ByteTokenizer.encode: expected a string, got ${typeof text}`);
    const addSpecial = options.addSpecialTokens ?? true;
    const ids: number[] = [];
    if (addSpecial && this.addBosToken) ids.push(this.bosTokenId!);
    const pushBytes = (segment: string) => {
      for (const byte of this.utf8Encoder.encode(segment)) ids.push(byte);
    };
    if (this.splitter) {
      let start = 0;
      for (const match of text.matchAll(this.splitter)) {
        pushBytes(text.slice(start, match.index));
        ids.push(this.addedIds.get(match[0])!);
        start = match.index! + match[0].length;
      }
      pushBytes(text.slice(start));
    } else {
      pushBytes(text);
    }
    if (addSpecial && this.addEosToken) ids.push(this.eosTokenId!);
    return ids;
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    assertTokenIds(ids, this.vocabSize, 'ByteTokenizer.decode');
    const skipSpecial = options.skipSpecialTokens ?? false;
    const pieces: string[] = [];
    const pendingBytes: number[] = [];
    const flushBytes = () => {
      if (pendingBytes.length === 0) return;
      pieces.push(this.utf8Decoder.decode(Uint8Array.from(pendingBytes)));
      pendingBytes.length = 0;
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id < BYTE_VOCAB_SIZE) {
        pendingBytes.push(id);
        continue;
      }
      flushBytes();
      if (!(skipSpecial && this.specialIds.has(id))) pieces.push(this.addedTokens[id - BYTE_VOCAB_SIZE]!);
    }
    flushBytes();
    return pieces.join('');
  }

  tokenToId(token: string): number | undefined {
    return parseByteToken(token) ?? this.addedIds.get(token);
  }

  idToToken(id: number): string | undefined {
    if (!Number.isInteger(id) || id < 0) return undefined;
    return id < BYTE_VOCAB_SIZE ? byteToken(id) : this.addedTokens[id - BYTE_VOCAB_SIZE];
  }

  addTokens(tokens: readonly string[], options: AddTokensOptions = {}): number[] {
    assertTokenStrings(tokens, 'ByteTokenizer.addTokens');
    const special = options.special ?? false;
    let changed = false;
    const ids = tokens.map((token) => {
      let id = this.tokenToId(token);
      if (id === undefined) {
        id = BYTE_VOCAB_SIZE + this.addedTokens.length;
        this.addedTokens.push(token);
        this.addedIds.set(token, id);
        changed = true;
      }
      // Single bytes stay plain bytes; an added token can be promoted to special.
      if (special && id >= BYTE_VOCAB_SIZE && !this.specialIds.has(id)) {
        this.specialIds.add(id);
        changed = true;
      }
      return id;
    });
    if (changed) this.rebuildLookups();
    return ids;
  }

  applyChatTemplate(messages: readonly ChatMessage[], options: TokenizerChatOptions = {}): number[] {
    return encodeChat(this, this.templates, messages, options);
  }

  /** Writes the HF files of toHFFiles() into `dir`, so savePretrained can ship this tokenizer. */
  async save(dir: string): Promise<void> {
    await writeTokenizerFiles(dir, this.toHFFiles());
  }

  /**
   * The same tokenizer as HF files (a merge-free byte-level BPE whose id b is byte b, then the added tokens), so
   * HFTokenizer, transformers and tokenizers.js encode exactly as this class does.
   */
  toHFFiles(): HFTokenizerFiles {
    const byteChars = gpt2ByteToUnicode();
    const vocab: Record<string, number> = {};
    byteChars.forEach((char, byte) => (vocab[char] = byte));
    const addedTokens = this.addedTokens.map((content, i) => {
      const special = this.specialIds.has(BYTE_VOCAB_SIZE + i);
      const entry = { id: BYTE_VOCAB_SIZE + i, content, single_word: false, lstrip: false, rstrip: false };
      return { ...entry, normalized: !special, special };
    });
    const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
    const tokenizerJson = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: null,
      decoder: byteLevel,
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: [],
      },
    };
    const tokenizerConfig: Record<string, unknown> = {
      tokenizer_class: 'PreTrainedTokenizerFast',
      add_bos_token: this.addBosToken,
      add_eos_token: this.addEosToken,
      clean_up_tokenization_spaces: false,
      model_max_length: 1e30,
    };
    if (this.bosToken !== undefined) tokenizerConfig['bos_token'] = this.bosToken;
    if (this.eosToken !== undefined) tokenizerConfig['eos_token'] = this.eosToken;
    if (this.padToken !== undefined) tokenizerConfig['pad_token'] = this.padToken;
    const templateNames = Object.keys(this.templates);
    if (templateNames.length === 1 && templateNames[0] === 'default') {
      tokenizerConfig['chat_template'] = this.templates['default'];
    } else if (templateNames.length > 0) {
      tokenizerConfig['chat_template'] = templateNames.map((name) => ({ name, template: this.templates[name] }));
    }
    return { tokenizerJson, tokenizerConfig };
  }

  private rebuildLookups(): void {
    this.specialMap = new Map(
      [...this.specialIds].sort((a, b) => a - b).map((id) => [this.addedTokens[id - BYTE_VOCAB_SIZE]!, id]),
    );
    if (this.addedTokens.length === 0) {
      this.splitter = null;
      return;
    }
    // Alternation tries alternatives in order, so listing longer tokens first makes the longest one win.
    const byLength = [...this.addedTokens].sort((a, b) => b.length - a.length);
    this.splitter = new RegExp(byLength.map(escapeRegExp).join('|'), 'gu');
  }
}
