/**
 * The options of `generate` / `streamGenerate`, their result types, and `planGeneration`, which checks every
 * option against the model and the prompts (lengths, ids, sampler settings) and resolves the defaults, all
 * before any tensor work, so a bad call fails fast and leaves nothing to clean up.
 */
import type * as tf from '@tensorflow/tfjs';
import {
  LogitsProcessorList,
  Rng,
  StopSequencesCriterion,
  StopTokensCriterion,
  buildLogitsProcessors,
  globalRandom,
  stopWhenAny,
  type LogitsProcessor,
  type StoppingCriterion,
} from '@chimera/core';
import { eosTokenIds } from '../config';
import type { CausalLM } from '../model/causal-lm';
import type { TextTokenizer } from '../tokenizers/tokenizer';
import { batchPrompts, type GenerationPrompts, type PromptBatch } from './batch-prompts';

/** Why a row ended: a stop token or stop sequence ('stop'), or maxNewTokens / maxLength ('length'). */
export type FinishReason = 'stop' | 'length';

/** One decoding step, as streamed: the new token of every row. */
export interface GenerationStep {
  /** 0-based index of this step (= the number of tokens generated before it). */
  step: number;
  /** Per row, this step's token; rows that finished on an earlier step get the pad id. */
  tokens: number[];
  /** Per row, true when `tokens[b]` is padding (the row had already finished). */
  padded: boolean[];
  /** Per row, finished after this step (sticky). */
  finished: boolean[];
  /** Per row, why it finished, or null while it runs. */
  finishReasons: (FinishReason | null)[];
  /** With a tokenizer: per row, the text this step completes ('' while a multi-byte character is unfinished). */
  text?: string[];
}

/** What a generation returns. Rows are in prompt order; nothing here holds tensors. */
export interface GenerationResult {
  /** Per row, the generated ids without padding (a stop token or stop sequence that ended the row is kept). */
  tokens: number[][];
  /** Per row, the prompt's ids (no padding) followed by `tokens`; for embedded prompts, just `tokens`. */
  sequences: number[][];
  /** Per row, why it ended. */
  finishReasons: FinishReason[];
  /** Per row, the number of generated tokens (`tokens[b].length`). */
  lengths: number[];
  /** [B][steps]: every step's tokens, finished rows padded with `padTokenId` (what the stream emitted). */
  paddedTokens: number[][];
  /** Decoding steps run (the longest row's length). */
  steps: number;
  /** The id finished rows were padded with in `paddedTokens`. */
  padTokenId: number;
  /** With a tokenizer: per row, `tokens` decoded. */
  text?: string[];
}

/** Options of `generate` / `streamGenerate`: length limits, sampling, stops and the tokenizer. */
export interface GenerateOptions {
  /** Tokens to generate per row at most. Give this or maxLength (or both: the tighter one wins per row). */
  maxNewTokens?: number;
  /** Total tokens per row at most, its real prompt length included. */
  maxLength?: number;

  /**
   * Sample from the processed distribution (true) or take the argmax (false). Default: true when temperature,
   * topK, topP or minP is set, else false (greedy).
   */
  doSample?: boolean;
  /** Sampling temperature, a finite number > 0 (ignored when doSample is false: greedy takes the argmax). */
  temperature?: number;
  /** Keep only the k most likely tokens when sampling (0 or unset = off). */
  topK?: number;
  /** Nucleus sampling: keep the smallest set of tokens with this probability mass, in (0, 1] (1 = off). */
  topP?: number;
  /** Keep tokens with at least minP times the top probability (0 or unset = off). */
  minP?: number;
  /** Floor on how many tokens top-k and top-p keep (default 1). */
  minTokensToKeep?: number;
  /** > 1 discourages tokens already in the row, prompt ids included (HF semantics; embedded prompts have no ids). */
  repetitionPenalty?: number;
  /** Token ids never to generate. */
  suppressTokens?: readonly number[];
  /** When set, only these ids may be generated (e.g. an image-code range). */
  allowTokens?: readonly number[];
  /**
   * Extra processors, run before the built-in ones (so guidance-like processors see logits that no filter has
   * set to -Infinity). Each gets the logits [B, V] and every row's ids so far.
   */
  logitsProcessors?: readonly LogitsProcessor[];
  /** Seed of a private generator for sampling: the same seed gives the same tokens. */
  seed?: number;
  /** The generator to sample with (default: the global one that `manualSeed` sets). Not with `seed`. */
  rng?: Rng;

  /** Ids that end a row. Default: the config's eosTokenId; null or [] for none. */
  eosTokenId?: number | readonly number[] | null;
  /**
   * Id sequences that end a row once its tokens end with one. Strings are encoded with `tokenizer` (no special
   * tokens) and matched as ids, so a string the model spells with other tokens does not match.
   */
  stopSequences?: readonly (readonly number[] | string)[];
  /** Fills the prompts' left padding and the steps of finished rows. Default: config.padTokenId, else the first EOS id, else 0. */
  padTokenId?: number;

  /**
   * Decode one token per step with a KV cache (default true). false recomputes the whole sequence every step
   * (slow; the reference the cache is tested and benchmarked against).
   */
  useCache?: boolean;
  /** With an int32 [B, T] prompt tensor: its mask [B, T], 1 real / 0 padding (left padding only). */
  paddingMask?: tf.Tensor;
  /**
   * Prompt positions int32 [B, T] or [A, B, T] (M-RoPE). Default: counted over each row's real tokens. Every
   * generated token then gets, on every axis, one more than the last: the row's largest prompt position + 1, + 2, ...
   */
  positions?: tf.Tensor;
  /** Prompt attention bias [B or 1, 1 or H, T, T] (e.g. prefix-LM), padding included. Generated tokens see every real token before them. */
  attentionBias?: tf.Tensor;
  /** Prompt token modalities int32 [B, T] (routing). Generated tokens are text: modality 0. */
  tokenModality?: tf.Tensor;
  /**
   * Handed to inserted blocks and prefix adapters on every forward call (prefill and each step); a block tells
   * the calls apart by its BlockContext (pastLength, positions). Without the cache every step re-runs the prompt.
   */
  context?: Record<string, unknown>;

  /** Called after every step, before the stream yields it; a throw ends generation (and frees everything). */
  onToken?: (step: GenerationStep) => void | Promise<void>;
  /** Decodes each step's tokens into text deltas (StreamDecoder) and the final rows into `text`. */
  tokenizer?: Pick<TextTokenizer, 'decode'> & Partial<Pick<TextTokenizer, 'encode'>>;
  /** Leave special tokens out of the decoded text (default false). */
  skipSpecialTokens?: boolean;
}

/** Everything the decoding loop needs, checked and resolved. */
export interface GenerationPlan {
  model: CausalLM;
  prompts: PromptBatch;
  vocabSize: number;
  padTokenId: number;
  /** Per row, how many tokens it may generate (maxNewTokens and maxLength combined). */
  budgets: number[];
  /** The most steps any row can take. */
  maxSteps: number;
  processors: LogitsProcessorList;
  /** How many of `processors` (the first ones) are the caller's `logitsProcessors`. */
  customProcessors: number;
  /** null for greedy decoding. */
  rng: Rng | null;
  /** Stop tokens and stop sequences, or null when there are none. */
  stop: StoppingCriterion | null;
  useCache: boolean;
  positions: tf.Tensor | null;
  /** With explicit positions: per row, the position of the first generated token. */
  nextPositions: number[] | null;
  attentionBias: tf.Tensor | null;
  tokenModality: tf.Tensor | null;
  context: Record<string, unknown> | undefined;
  onToken: GenerateOptions['onToken'] | null;
  tokenizer: GenerateOptions['tokenizer'] | null;
  skipSpecialTokens: boolean;
}

const SAMPLING_KEYS = ['temperature', 'topK', 'topP', 'minP'] as const;

/** Checks the call and resolves the defaults (throws a precise error before any tensor is made). */
export function planGeneration(model: CausalLM, prompts: GenerationPrompts, options: GenerateOptions = {}): GenerationPlan {
  assertNotDisposed(model);
  const config = model.config;
  const vocabSize = config.vocabSize;
  const batch = batchPrompts(prompts, vocabSize, config.hiddenSize, options.paddingMask);
  const checkId = (id: number, what: string) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new Error(`generate: ${what} ${id} is outside the vocabulary [0, ${vocabSize})`);
    }
  };

  const budgets = lengthBudgets(options, batch);
  const maxSteps = Math.max(...budgets);
  const maxPositions = config.maxPositionEmbeddings;
  if (batch.length > maxPositions) {
    throw new Error(
      `generate: the prompt has ${batch.length} positions${batch.batch > 1 ? ' (padded to the longest row)' : ''}, ` +
        `more than the model's maxPositionEmbeddings (${maxPositions}); shorten the prompt`,
    );
  }
  // The last token is never fed back, so the model sees at most T + maxSteps - 1 positions (cache included).
  if (batch.length + maxSteps - 1 > maxPositions) {
    throw new Error(
      `generate: a prompt of ${batch.length} positions plus ${maxSteps} new tokens needs ${batch.length + maxSteps - 1} ` +
        `positions, more than the model's maxPositionEmbeddings (${maxPositions}); lower maxNewTokens / maxLength to at most ` +
        `${maxPositions - batch.length + 1} or shorten the prompt`,
    );
  }

  const eos = options.eosTokenId === undefined ? eosTokenIds(config) : toList(options.eosTokenId);
  eos.forEach((id) => checkId(id, 'eosTokenId'));
  const padTokenId = options.padTokenId ?? config.padTokenId ?? eos[0] ?? 0;
  checkId(padTokenId, 'padTokenId');
  const stopSequences = (options.stopSequences ?? []).map((sequence, i) => {
    if (typeof sequence === 'string') {
      if (!options.tokenizer?.encode) {
        throw new Error(`generate: stop sequence ${i} is text (${JSON.stringify(sequence)}); pass a tokenizer with encode(), or give it as token ids`);
      }
      return options.tokenizer.encode(sequence, { addSpecialTokens: false });
    }
    return [...sequence];
  });
  stopSequences.forEach((sequence, i) => {
    if (sequence.length === 0) throw new Error(`generate: stop sequence ${i} is empty; every stop sequence needs at least one token`);
    sequence.forEach((id) => checkId(id, `stop sequence ${i} holds id`));
  });
  const stops: StoppingCriterion[] = [];
  if (eos.length > 0) stops.push(new StopTokensCriterion(eos));
  if (stopSequences.length > 0) stops.push(new StopSequencesCriterion(stopSequences));

  if (options.seed !== undefined && options.rng !== undefined) {
    throw new Error('generate: give seed or rng, not both (seed makes a private generator; rng is one you own)');
  }
  if (options.seed !== undefined && !Number.isInteger(options.seed)) {
    throw new Error(`generate: seed must be an integer, got ${options.seed}`);
  }
  const doSample = options.doSample ?? SAMPLING_KEYS.some((key) => options[key] !== undefined);
  const rng = doSample ? (options.seed !== undefined ? new Rng(options.seed) : (options.rng ?? globalRandom())) : null;
  for (const key of ['suppressTokens', 'allowTokens'] as const) (options[key] ?? []).forEach((id) => checkId(id, `${key} holds id`));
  if (options.topK !== undefined && !(Number.isInteger(options.topK) && options.topK >= 1)) {
    throw new Error(`generate: topK must be an integer >= 1 (leave it out for no top-k), got ${options.topK}`);
  }
  if (options.topP !== undefined && !(options.topP > 0 && options.topP <= 1)) {
    throw new Error(`generate: topP must be in (0, 1] (1 keeps every token), got ${options.topP}`);
  }
  // Greedy decoding takes the argmax, which a temperature does not move: ignore it there (0 included).
  if (doSample) checkTemperature(options.temperature);
  // The processors' constructors check the other values (0 <= minP <= 1, penalty > 0).
  const builtIn = buildLogitsProcessors(doSample ? options : { ...options, temperature: undefined });
  const custom = options.logitsProcessors ?? [];
  const processors = new LogitsProcessorList([...custom, ...builtIn.processors]);

  const positions = options.positions ?? null;
  return {
    model,
    prompts: batch,
    vocabSize,
    padTokenId,
    budgets,
    maxSteps,
    processors,
    customProcessors: custom.length,
    rng,
    stop: stops.length === 0 ? null : stopWhenAny(...stops),
    useCache: options.useCache ?? true,
    positions,
    nextPositions: positions ? nextPositions(positions, batch, model.model.rotary.numAxes) : null,
    attentionBias: options.attentionBias ?? null,
    tokenModality: options.tokenModality ?? null,
    context: options.context,
    onToken: options.onToken ?? null,
    tokenizer: options.tokenizer ?? null,
    skipSpecialTokens: options.skipSpecialTokens ?? false,
  };
}

/** A disposed model has no weights left; without this check the first tensor op fails with a bare TypeError. */
function assertNotDisposed(model: CausalLM): void {
  const params = model.namedParameters();
  if (params.length === 0 || params.some(([, v]) => v.isDisposed)) {
    throw new Error(
      'generate: the model has been disposed (model.dispose() freed its weights), so it cannot run; build or load a new ' +
        'model (new CausalLM(config), loadPretrained(dir)) and generate with that one',
    );
  }
}

function checkTemperature(temperature: number | undefined): void {
  if (temperature === undefined || (temperature > 0 && Number.isFinite(temperature))) return;
  if (temperature === 0) {
    throw new Error(
      'generate: temperature 0 cannot sample (it would divide the logits by zero); for greedy (argmax) decoding pass ' +
        'doSample: false (a temperature is then ignored), or leave out temperature, topK, topP and minP',
    );
  }
  throw new Error(
    `generate: temperature must be a finite number > 0 (1 leaves the logits as they are, < 1 sharpens), got ${temperature}; ` +
      'for greedy (argmax) decoding pass doSample: false',
  );
}

/** Per row, the tokens it may generate: maxNewTokens, and maxLength minus its real prompt length. */
function lengthBudgets(options: GenerateOptions, batch: PromptBatch): number[] {
  const { maxNewTokens, maxLength } = options;
  if (maxNewTokens === undefined && maxLength === undefined) {
    throw new Error('generate: set maxNewTokens (tokens per row) or maxLength (prompt + new tokens), otherwise generation may never stop');
  }
  if (maxNewTokens !== undefined && !(Number.isInteger(maxNewTokens) && maxNewTokens >= 1)) {
    throw new Error(`generate: maxNewTokens must be an integer >= 1, got ${maxNewTokens}`);
  }
  if (maxLength !== undefined && !(Number.isInteger(maxLength) && maxLength >= 1)) {
    throw new Error(`generate: maxLength must be an integer >= 1, got ${maxLength}`);
  }
  return batch.realLengths.map((length, b) => {
    const byLength = maxLength === undefined ? Infinity : maxLength - length;
    if (byLength < 1) {
      throw new Error(
        `generate: prompt ${b} already has ${length} tokens, so maxLength ${maxLength} leaves no room to generate; ` +
          `raise maxLength above ${length} or use maxNewTokens`,
      );
    }
    return Math.min(maxNewTokens ?? Infinity, byLength);
  });
}

/** Per row: one more than the largest position any axis gives a real prompt token. */
function nextPositions(positions: tf.Tensor, batch: PromptBatch, axes: number): number[] {
  const { batch: rows, length } = batch;
  const ok2 = positions.rank === 2 && positions.shape[0] === rows && positions.shape[1] === length;
  const ok3 = positions.rank === 3 && axes > 1 && positions.shape[0] === axes && positions.shape[1] === rows && positions.shape[2] === length;
  if (!(ok2 || ok3) || positions.dtype !== 'int32') {
    const expected = axes > 1 ? `[${rows}, ${length}] or [${axes}, ${rows}, ${length}] (M-RoPE)` : `[${rows}, ${length}]`;
    throw new Error(`generate: positions must be int32 ${expected} like the prompts, got ${positions.dtype} [${positions.shape}]`);
  }
  const values = positions.dataSync();
  const planes = positions.rank === 3 ? positions.shape[0]! : 1;
  return Array.from({ length: rows }, (_, b) => {
    let largest = -Infinity;
    for (let a = 0; a < planes; a++) {
      for (let t = batch.padding[b]!; t < length; t++) largest = Math.max(largest, values[(a * rows + b) * length + t]!);
    }
    return largest + 1;
  });
}

function toList(ids: number | readonly number[] | null): number[] {
  return ids === null ? [] : typeof ids === 'number' ? [ids] : [...ids];
}
