// HF fast tokenizers: tokenizer.json (through @huggingface/tokenizers) plus tokenizer_config.json (special tokens,
// added_tokens_decoder, add_bos_token / add_eos_token, chat templates), with token adding and saving.
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import type { ChatMessage, TokenizerChatOptions } from './chat-template';
import { writeTokenizerFiles } from './tokenizer-files';
import { encodeChat, normalizeChatTemplates } from './chat-template';
import { previewJson } from '../config';
import {
  assertTokenIds,
  assertTokenStrings,
  type AddTokensOptions,
  type DecodeOptions,
  type EncodeOptions,
  type TextTokenizer,
} from './tokenizer';

/** One entry of tokenizer.json's `added_tokens`. */
interface AddedTokenEntry {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

type JsonObject = Record<string, unknown>;

/** Options of {@link HFTokenizer.fromJSON}. */
export interface HFTokenizerOptions {
  /** A chat template that overrides the one in tokenizer_config.json (e.g. from chat_template.jinja). */
  chatTemplate?: string | Readonly<Record<string, string>>;
  /** Where the files came from, for error messages. */
  source?: string;
}

const SPECIAL_TOKEN_FIELDS = ['bos_token', 'eos_token', 'pad_token', 'unk_token'] as const;

function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Token ids are int32 in tensors; one past the largest id must be a valid vocabulary size too. */
const MAX_TOKEN_ID = 2 ** 31 - 2;

/** Deepest JSON nesting accepted in tokenizer files (real ones need under 10 levels). */
const MAX_JSON_NESTING = 128;

/** A special token in tokenizer_config.json is a string or an AddedToken object `{ content, ... }`. */
function tokenContent(value: unknown, field: string, source: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value['content'] === 'string') return value['content'];
  throw new Error(`${source}: ${field} must be a string or { content: string }, got ${previewJson(value)}`);
}

function toAddedTokenEntry(raw: unknown, where: string, idOverride?: number): AddedTokenEntry {
  if (!isObject(raw)) throw new Error(`${where} must be an object, got ${previewJson(raw)}`);
  const id = idOverride ?? raw['id'];
  const content = raw['content'];
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || typeof content !== 'string' || content === '') {
    throw new Error(`${where} needs an integer id >= 0 and non-empty string content, got ${previewJson(raw)}`);
  }
  if (id > MAX_TOKEN_ID) throw new Error(`${where}: id ${id} is above ${MAX_TOKEN_ID}, the largest an int32 vocabulary allows`);
  const special = raw['special'] === true;
  return {
    id,
    content,
    single_word: raw['single_word'] === true,
    lstrip: raw['lstrip'] === true,
    rstrip: raw['rstrip'] === true,
    normalized: typeof raw['normalized'] === 'boolean' ? raw['normalized'] : !special,
    special,
  };
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

async function readJsonFile(path: string, what: string, required: boolean): Promise<JsonObject | undefined> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !required) return undefined;
    throw new Error(`cannot read ${path} (${(error as Error).message})`);
  }
  let text: string;
  try {
    // Strict: a lenient decode would turn a damaged token into U+FFFD, a different token, without a word.
    text = strictUtf8.decode(bytes);
  } catch {
    throw new Error(`${path} is not valid UTF-8; re-download or regenerate the ${what}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`${path} is not valid JSON (${(error as Error).message}); re-download or regenerate the ${what}`);
  }
  if (!isObject(parsed))
    throw new Error(`${path} must hold a JSON object, got ${Array.isArray(parsed) ? 'an array' : typeof parsed}`);
  return parsed;
}

/**
 * An HF fast tokenizer: tokenizer.json (through @huggingface/tokenizers) plus tokenizer_config.json (special tokens,
 * BOS/EOS wrapping, chat templates), with token adding and saving. Build one with `fromDirectory` or `fromJSON`.
 */
export class HFTokenizer implements TextTokenizer {
  private readonly source: string;
  private readonly json: JsonObject & { added_tokens: AddedTokenEntry[] };
  private readonly config: JsonObject;
  private templates: Record<string, string>;
  private inner!: Tokenizer;
  private size = 0;
  private addedByContent = new Map<string, AddedTokenEntry>();
  private specialMap = new Map<string, number>();
  private wrapWithBos = false;
  private wrapWithEos = false;
  /** True when the post-processor already adds exactly the BOS/EOS wanted, so its output is used as is. */
  private usePostProcessor = true;
  /** Beginning-of-sequence token string, if any. */
  readonly bosToken: string | undefined;
  /** End-of-sequence token string, if any. */
  readonly eosToken: string | undefined;
  /** Padding token string, if any. */
  readonly padToken: string | undefined;
  /** Unknown-token string, if any. */
  readonly unkToken: string | undefined;

  private constructor(
    json: JsonObject & { added_tokens: AddedTokenEntry[] },
    config: JsonObject,
    options: HFTokenizerOptions,
  ) {
    this.source = options.source ?? 'HFTokenizer';
    this.json = json;
    this.config = config;
    this.templates = normalizeChatTemplates(options.chatTemplate ?? config['chat_template'], this.source);
    this.bosToken = tokenContent(config['bos_token'], 'bos_token', this.source);
    this.eosToken = tokenContent(config['eos_token'], 'eos_token', this.source);
    this.padToken = tokenContent(config['pad_token'], 'pad_token', this.source);
    const model = json['model'] as JsonObject;
    this.unkToken =
      tokenContent(config['unk_token'], 'unk_token', this.source) ??
      (typeof model['unk_token'] === 'string' ? model['unk_token'] : undefined);
    this.rebuild();
    // As transformers does: the configured special tokens become added special tokens (new ones get new ids).
    const additional = config['additional_special_tokens'];
    const additionalContents = Array.isArray(additional)
      ? additional.map((value, i) => tokenContent(value, `additional_special_tokens[${i}]`, this.source))
      : [];
    const configured = [this.bosToken, this.eosToken, this.padToken, this.unkToken, ...additionalContents];
    this.addTokens(
      configured.filter((token): token is string => token !== undefined),
      { special: true },
    );
  }

  /**
   * Loads `tokenizer.json` (required) and, when present, `tokenizer_config.json` and `chat_template.jinja`
   * (or `chat_template.json`) from an HF model directory.
   */
  static async fromDirectory(dir: string): Promise<HFTokenizer> {
    const stat = await fs.stat(dir).catch(() => null);
    if (!stat?.isDirectory()) {
      throw new Error(
        `HFTokenizer.fromDirectory: ${dir} is not a directory; pass the folder that holds tokenizer.json`,
      );
    }
    const tokenizerPath = nodePath.join(dir, 'tokenizer.json');
    const tokenizerJson = await readJsonFile(tokenizerPath, 'tokenizer', false);
    if (!tokenizerJson) {
      const present = await fs.readdir(dir);
      const slowFiles = present.filter((name) =>
        ['tokenizer.model', 'vocab.json', 'merges.txt', 'vocab.txt'].includes(name),
      );
      throw new Error(
        `HFTokenizer.fromDirectory: ${dir} has no tokenizer.json` +
          (slowFiles.length
            ? ` (it has ${slowFiles.join(', ')}, the slow-tokenizer format); convert it once with Python: ` +
              'AutoTokenizer.from_pretrained(dir).save_pretrained(dir)'
            : '; copy the tokenizer files of the model into it'),
      );
    }
    const tokenizerConfig =
      (await readJsonFile(nodePath.join(dir, 'tokenizer_config.json'), 'tokenizer config', false)) ?? {};
    let chatTemplate: string | undefined;
    try {
      chatTemplate = await fs.readFile(nodePath.join(dir, 'chat_template.jinja'), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      const templateFile = await readJsonFile(nodePath.join(dir, 'chat_template.json'), 'chat template', false);
      const fromFile = templateFile?.['chat_template'];
      if (typeof fromFile === 'string') chatTemplate = fromFile;
    }
    return HFTokenizer.fromJSON(tokenizerJson, tokenizerConfig, { chatTemplate, source: tokenizerPath });
  }

  /** Builds a tokenizer from the parsed contents of tokenizer.json and (optionally) tokenizer_config.json. */
  static fromJSON(
    tokenizerJson: unknown,
    tokenizerConfig: unknown = {},
    options: HFTokenizerOptions = {},
  ): HFTokenizer {
    const source = options.source ?? 'HFTokenizer.fromJSON';
    if (!isObject(tokenizerJson)) {
      throw new Error(`${source}: tokenizer.json must be a JSON object, got ${previewJson(tokenizerJson, 80)}`);
    }
    if (!isObject(tokenizerJson['model'])) {
      throw new Error(
        `${source}: tokenizer.json has no "model" object; it does not look like a tokenizers-library file`,
      );
    }
    if (!isObject(tokenizerConfig)) {
      throw new Error(`${source}: tokenizer_config.json must be a JSON object, got ${previewJson(tokenizerConfig, 80)}`);
    }
    checkNesting(tokenizerJson, 'tokenizer.json', source);
    checkNesting(tokenizerConfig, 'tokenizer_config.json', source);
    const vocab = checkModel(tokenizerJson['model'], source);
    checkComponentFlags(tokenizerJson, source);
    const rawAdded = tokenizerJson['added_tokens'] ?? [];
    if (!Array.isArray(rawAdded)) throw new Error(`${source}: tokenizer.json's added_tokens must be an array, got ${previewJson(rawAdded)}`);
    const addedTokens = rawAdded.map((entry, i) => toAddedTokenEntry(entry, `${source}: tokenizer.json added_tokens[${i}]`));

    // tokenizer_config.json's added_tokens_decoder may list tokens that tokenizer.json lacks, or mark them special.
    const decoderEntries = tokenizerConfig['added_tokens_decoder'];
    if (decoderEntries !== undefined) {
      if (!isObject(decoderEntries)) throw new Error(`${source}: added_tokens_decoder must be an object keyed by id`);
      for (const [key, raw] of Object.entries(decoderEntries)) {
        const entry = toAddedTokenEntry(raw, `${source}: added_tokens_decoder["${key}"]`, Number(key));
        const existing = addedTokens.find((token) => token.id === entry.id);
        if (!existing) {
          addedTokens.push(entry);
        } else if (existing.content !== entry.content) {
          throw new Error(
            `${source}: id ${entry.id} is "${existing.content}" in tokenizer.json but "${entry.content}" in ` +
              'tokenizer_config.json added_tokens_decoder; the two files come from different tokenizers',
          );
        } else {
          existing.special ||= entry.special;
        }
      }
    }
    if (vocab) checkAddedTokens(addedTokens, vocab, source);
    const json = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      ...tokenizerJson,
      added_tokens: addedTokens,
    };
    return new HFTokenizer(json, { ...tokenizerConfig }, { ...options, source });
  }

  get vocabSize(): number {
    return this.size;
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

  /** Id of the unknown token, if any. */
  get unkTokenId(): number | undefined {
    return this.unkToken === undefined ? undefined : this.tokenToId(this.unkToken);
  }

  get specialTokens(): ReadonlyMap<string, number> {
    return this.specialMap;
  }

  get chatTemplate(): string | undefined {
    return this.templates['default'];
  }

  /** All chat templates by name (`default`, and e.g. `tool_use`). */
  get chatTemplates(): Readonly<Record<string, string>> {
    return this.templates;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new Error(`HFTokenizer.encode: expected a string, got ${typeof text}`);
    const addSpecial = options.addSpecialTokens ?? true;
    const encoding = this.library('encode the text', () =>
      this.inner.encode(text, { add_special_tokens: addSpecial && this.usePostProcessor }),
    );
    let ids = encoding.ids;
    // The library leaves a piece without an id as undefined (BPE) or null (Unigram without unk_id).
    const missing = ids.findIndex((id) => !Number.isInteger(id));
    if (missing >= 0) {
      throw new Error(
        `HFTokenizer.encode: piece ${previewJson(encoding.tokens[missing])} has no id and ${this.describeSource()} has no ` +
          'unk token; this tokenizer cannot represent the text (byte-level tokenizers can represent any text)',
      );
    }
    if (addSpecial && !this.usePostProcessor) {
      ids = [...(this.wrapWithBos ? [this.bosTokenId!] : []), ...ids, ...(this.wrapWithEos ? [this.eosTokenId!] : [])];
    }
    return ids;
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    assertTokenIds(ids, this.size, 'HFTokenizer.decode');
    // Ids in gaps of the vocabulary have no token; they decode to nothing.
    const known = Array.from(ids).filter((id) => this.inner.id_to_token(id) !== undefined);
    if (known.length === 0) return '';
    return this.library('decode the ids', () =>
      this.inner.decode(known, {
        skip_special_tokens: options.skipSpecialTokens ?? false,
        clean_up_tokenization_spaces: this.config['clean_up_tokenization_spaces'] === true,
      }),
    );
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.inner.id_to_token(id);
  }

  addTokens(tokens: readonly string[], options: AddTokensOptions = {}): number[] {
    assertTokenStrings(tokens, 'HFTokenizer.addTokens');
    const special = options.special ?? false;
    let nextId = this.size;
    let changed = false;
    const ids = tokens.map((content) => {
      const existing = this.addedByContent.get(content);
      if (existing) {
        if (special && !existing.special) {
          existing.special = true;
          changed = true;
        }
        return existing.id;
      }
      const known = this.inner.token_to_id(content);
      // A plain token of the model's vocabulary stays as it is: registering it as an added token would stop the
      // byte-level decoder from decoding it. Made special, it becomes an added token with its id, as in HF.
      if (known !== undefined && !special) return known;
      const id = known ?? nextId++;
      const entry = { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special };
      this.json.added_tokens.push(entry);
      this.addedByContent.set(content, entry);
      changed = true;
      return id;
    });
    if (changed) this.rebuild();
    return ids;
  }

  applyChatTemplate(messages: readonly ChatMessage[], options: TokenizerChatOptions = {}): number[] {
    return encodeChat(this, this.templates, messages, options);
  }

  /** The contents of tokenizer.json and tokenizer_config.json, including tokens added since loading. */
  toJSON(): { tokenizerJson: JsonObject; tokenizerConfig: JsonObject } {
    const addedTokens = [...this.json.added_tokens].sort((a, b) => a.id - b.id);
    const addedTokensDecoder: JsonObject = {};
    for (const { id, ...rest } of addedTokens) addedTokensDecoder[String(id)] = rest;
    const tokenizerConfig: JsonObject = { ...this.config, added_tokens_decoder: addedTokensDecoder };
    const names = Object.keys(this.templates);
    if (names.length === 0) delete tokenizerConfig['chat_template'];
    else if (names.length === 1 && names[0] === 'default') tokenizerConfig['chat_template'] = this.templates['default'];
    else tokenizerConfig['chat_template'] = names.map((name) => ({ name, template: this.templates[name] }));
    return { tokenizerJson: { ...this.json, added_tokens: addedTokens }, tokenizerConfig };
  }

  /** Writes tokenizer.json and tokenizer_config.json into `dir` (created if needed), each atomically. */
  async save(dir: string): Promise<void> {
    await writeTokenizerFiles(dir, this.toJSON());
  }

  /** The file this tokenizer came from, for messages: the path, or "tokenizer.json" when built from objects. */
  private describeSource(): string {
    return this.source.endsWith('tokenizer.json') ? this.source : `tokenizer.json (${this.source})`;
  }

  /**
   * Runs a call into @huggingface/tokenizers; whatever it throws (a TypeError on a malformed component, a
   * RangeError, a non-Error value) becomes an Error naming tokenizer.json.
   */
  private library<T>(what: string, call: () => T): T {
    try {
      return call();
    } catch (error) {
      const reason = error instanceof Error ? `${error.name}: ${error.message}` : previewJson(error);
      throw new Error(
        `${this.describeSource()}: @huggingface/tokenizers failed to ${what} (${reason}); the file's normalizer, ` +
          'pre_tokenizer, model or decoder is malformed or unsupported',
      );
    }
  }

  /** Rebuilds the library tokenizer and the lookups after the added tokens changed. */
  private rebuild(): void {
    try {
      this.inner = new Tokenizer(this.json, this.config);
    } catch (error) {
      throw new Error(
        `${this.source}: @huggingface/tokenizers could not build the tokenizer ` +
          `(${error instanceof Error ? error.message : previewJson(error)}); ` +
          'check that tokenizer.json is a complete tokenizers-library file (model type BPE, WordPiece or Unigram)',
      );
    }
    this.size = this.inner.model?.vocab.length ?? 0;
    this.addedByContent = new Map(this.json.added_tokens.map((entry) => [entry.content, entry]));
    const specials = new Map<string, number>();
    for (const entry of this.json.added_tokens) if (entry.special) specials.set(entry.content, entry.id);
    for (const field of SPECIAL_TOKEN_FIELDS) {
      const content = {
        bos_token: this.bosToken,
        eos_token: this.eosToken,
        pad_token: this.padToken,
        unk_token: this.unkToken,
      }[field];
      const id = content === undefined ? undefined : this.inner.token_to_id(content);
      if (content !== undefined && id !== undefined) specials.set(content, id);
    }
    this.specialMap = new Map([...specials].sort((a, b) => a[1] - b[1]));
    this.planSpecialTokenWrapping();
  }

  /**
   * add_bos_token / add_eos_token in tokenizer_config.json override what tokenizer.json's post-processor adds (as
   * transformers' Llama tokenizers do). Probe the post-processor with an empty text to see what it adds.
   */
  private planSpecialTokenWrapping(): void {
    let probe: number[] = [];
    try {
      probe = this.inner.encode('', { add_special_tokens: true }).ids;
    } catch {
      probe = [];
    }
    const bosId = this.bosTokenId;
    const eosId = this.eosTokenId;
    const postAddsBos = bosId !== undefined && probe[0] === bosId;
    const postAddsEos =
      eosId !== undefined && probe.length > (postAddsBos ? 1 : 0) && probe[probe.length - 1] === eosId;
    const addBos = this.config['add_bos_token'];
    const addEos = this.config['add_eos_token'];
    this.wrapWithBos = typeof addBos === 'boolean' ? addBos && bosId !== undefined : postAddsBos;
    this.wrapWithEos = typeof addEos === 'boolean' ? addEos && eosId !== undefined : postAddsEos;
    this.usePostProcessor = this.wrapWithBos === postAddsBos && this.wrapWithEos === postAddsEos;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// tokenizer.json checks: what HF's Rust reader refuses (or reads ambiguously), checked before the JS library,
// which would otherwise build something different from what the file says.

/** Throws when `value` nests deeper than MAX_JSON_NESTING (so no later walk, e.g. saving, overflows the stack). */
function checkNesting(value: unknown, file: string, source: string): void {
  const exceeds = (v: unknown, depth: number): boolean => {
    if (v === null || typeof v !== 'object') return false;
    if (depth > MAX_JSON_NESTING) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (exceeds(child, depth + 1)) return true;
    return false;
  };
  if (exceeds(value, 1)) {
    throw new Error(`${source}: ${file} is nested more than ${MAX_JSON_NESTING} levels deep; a tokenizer file needs under 10, so it is corrupt`);
  }
}

function isTokenId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_TOKEN_ID;
}

/**
 * Checks the model section and returns its vocabulary (token -> id): ids are integers in int32 and unique (two
 * tokens sharing an id would decode ambiguously), and every BPE merge joins two tokens of the vocabulary into a
 * third (HF's reader refuses anything else). Unknown model types are left to the library, which refuses them.
 */
function checkModel(model: JsonObject, source: string): Map<string, number> | null {
  const where = `${source}: tokenizer.json model`;
  const type = model['type'];
  const raw = model['vocab'];
  if (type !== 'BPE' && type !== 'WordPiece' && type !== 'Unigram') {
    // The library builds an untyped "legacy" model from any vocabulary; HF's format always names the type.
    if (raw !== undefined) {
      throw new Error(`${where}.type must be "BPE", "WordPiece" or "Unigram", got ${previewJson(type)}; re-save the tokenizer with a recent tokenizers library`);
    }
    return null;
  }
  const vocab = new Map<string, number>();
  const byId = new Map<number, string>();
  const add = (token: string, id: number, at: string) => {
    const other = byId.get(id);
    if (other !== undefined) {
      throw new Error(`${where}.vocab gives id ${id} to both ${previewJson(other)} and ${previewJson(token)}; ids must be unique (${at})`);
    }
    byId.set(id, token);
    vocab.set(token, id);
  };
  if (type === 'Unigram') {
    if (!Array.isArray(raw) || raw.length === 0) throw new Error(`${where}.vocab must be a non-empty list of [piece, score], got ${previewJson(raw)}`);
    raw.forEach((entry, i) => {
      if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || typeof entry[1] !== 'number' || !Number.isFinite(entry[1])) {
        throw new Error(`${where}.vocab[${i}] must be [piece string, finite score], got ${previewJson(entry)}`);
      }
      if (vocab.has(entry[0])) throw new Error(`${where}.vocab lists the piece ${previewJson(entry[0])} twice (at ${vocab.get(entry[0])} and ${i})`);
      add(entry[0], i, `vocab[${i}]`);
    });
    const unk = model['unk_id'];
    if (unk !== undefined && unk !== null && !(isTokenId(unk) && unk < raw.length)) {
      throw new Error(`${where}.unk_id must be null or an index into vocab [0, ${raw.length}), got ${previewJson(unk)}`);
    }
    return vocab;
  }
  if (!isObject(raw)) throw new Error(`${where}.vocab must be an object of token -> id, got ${previewJson(raw)}`);
  for (const token of Object.keys(raw)) {
    const id = raw[token];
    if (!isTokenId(id)) throw new Error(`${where}.vocab[${previewJson(token)}] must be an integer id in [0, ${MAX_TOKEN_ID}], got ${previewJson(id)}`);
    add(token, id, `vocab[${previewJson(token)}]`);
  }
  if (type === 'BPE') {
    const prefix = model['continuing_subword_prefix'];
    if (prefix !== undefined && prefix !== null && prefix !== '') {
      // The JS library merges without it, so words would split differently from HF's tokenizers.
      throw new Error(`${where}.continuing_subword_prefix ${previewJson(prefix)} is not supported by @huggingface/tokenizers (JS); only BPE without one loads`);
    }
    const merges = model['merges'] ?? [];
    if (!Array.isArray(merges)) throw new Error(`${where}.merges must be a list, got ${previewJson(merges)}`);
    const pairs = merges.length > 0 && Array.isArray(merges[0]);
    merges.forEach((merge, i) => {
      let pair: unknown[];
      if (pairs) pair = Array.isArray(merge) ? merge : [merge];
      else pair = typeof merge === 'string' ? merge.split(' ') : [merge];
      if (pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string' || !pair[0] || !pair[1]) {
        throw new Error(
          `${where}.merges[${i}] must be ${pairs ? 'a pair of tokens ["a", "b"]' : 'a string "a b" of two tokens'} like merges[0], got ${previewJson(merge)}`,
        );
      }
      for (const token of [pair[0], pair[1], pair[0] + pair[1]] as string[]) {
        if (!vocab.has(token)) {
          throw new Error(`${where}.merges[${i}] ${previewJson(merge)} needs ${previewJson(token)}, which the vocab lacks; HF's tokenizers refuses such a file too`);
        }
      }
    });
  }
  return vocab;
}

/** An added token may reuse a vocabulary id only for the same content, and each content and id appears once. */
function checkAddedTokens(added: readonly AddedTokenEntry[], vocab: Map<string, number>, source: string): void {
  const byId = new Map<number, string>();
  for (const [token, id] of vocab) byId.set(id, token);
  const contents = new Map<string, number>();
  for (const entry of added) {
    const owner = byId.get(entry.id);
    if (owner !== undefined && owner !== entry.content) {
      throw new Error(
        `${source}: tokenizer.json gives id ${entry.id} to the added token ${previewJson(entry.content)} and to the vocabulary's ` +
          `${previewJson(owner)}; one id cannot decode to two tokens`,
      );
    }
    const earlier = contents.get(entry.content);
    if (earlier !== undefined && earlier !== entry.id) {
      throw new Error(`${source}: tokenizer.json adds ${previewJson(entry.content)} twice, as ids ${earlier} and ${entry.id}`);
    }
    contents.set(entry.content, entry.id);
    byId.set(entry.id, entry.content);
  }
}

/** Flags the components read as booleans; the JS library reads any truthy value (even "false") as true. */
const BOOLEAN_FLAGS = new Set([
  'add_prefix_space', 'trim_offsets', 'use_regex', 'byte_fallback', 'fuse_unk', 'ignore_merges', 'lowercase',
  'clean_text', 'handle_chinese_chars', 'invert', 'individual_digits', 'split', 'cleanup',
]);

function checkComponentFlags(json: JsonObject, source: string): void {
  const walk = (value: unknown, path: string): void => {
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${path}[${i}]`));
    else if (isObject(value)) {
      for (const key of Object.keys(value)) {
        const v = value[key];
        if (BOOLEAN_FLAGS.has(key) && v !== null && v !== undefined && typeof v !== 'boolean') {
          throw new Error(`${source}: tokenizer.json ${path}.${key} must be true or false, got ${previewJson(v)}`);
        }
        if (key === 'type' && typeof v !== 'string') throw new Error(`${source}: tokenizer.json ${path}.type must be a string, got ${previewJson(v)}`);
        if (key !== 'vocab' && key !== 'merges') walk(v, `${path}.${key}`);
      }
    }
  };
  for (const part of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder', 'model']) {
    if (Object.prototype.hasOwnProperty.call(json, part)) walk(json[part], part);
  }
}
