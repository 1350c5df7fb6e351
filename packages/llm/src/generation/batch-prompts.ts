/**
 * Turns generation prompts into one left-padded batch: token-id rows of different lengths, an already padded
 * [B, T] id tensor with its mask, or prompt embeddings [B, T, D] (multimodal prefixes) with their mask. Left
 * padding keeps every row's last real token in the last column, so one `lastLogitsOnly` forward reads every
 * row's next-token logits, and the padding mask lets positions start at each row's first real token.
 * Everything is checked here, in plain JS, before any tensor work.
 */
import * as tf from '@tensorflow/tfjs';

/** Prompt embeddings (e.g. text embeddings with image features spliced in), left-padded by `paddingMask`. */
export interface EmbeddedPrompts {
  /** float32 [B, T, D] with D the model width. */
  inputsEmbeds: tf.Tensor;
  /** [B, T], 1 real / 0 padding, zeros only at the start of a row. Default: every position real. */
  paddingMask?: tf.Tensor;
}

/**
 * What `generate` accepts: token-id rows (any lengths; they are left-padded), an int32 [B, T] id tensor
 * (left-padded already when `options.paddingMask` marks padding), or prompt embeddings.
 */
export type GenerationPrompts = readonly (readonly number[])[] | tf.Tensor | EmbeddedPrompts;

/** The batch the decoding loop works on. */
export interface PromptBatch {
  batch: number;
  /** Padded length T (the longest prompt). */
  length: number;
  /** Per row, the real prompt ids (no padding); empty rows for embedded prompts, which have no ids. */
  ids: number[][];
  /** Per row, the number of real prompt positions. */
  realLengths: number[];
  /** Per row, the number of padding positions at its start (T - realLength). */
  padding: number[];
  /** The prompt embeddings when the prompts were given as embeddings (the caller's tensor). */
  inputsEmbeds: tf.Tensor | null;
}

/** Checks and left-pads the prompts. `paddingMask` is the option given next to an id tensor. */
export function batchPrompts(
  prompts: GenerationPrompts,
  vocabSize: number,
  hiddenSize: number,
  paddingMask: tf.Tensor | undefined,
): PromptBatch {
  if (prompts instanceof tf.Tensor) return fromIdTensor(prompts, vocabSize, paddingMask);
  if (Array.isArray(prompts)) {
    if (paddingMask) {
      throw new Error('generate: paddingMask applies to a prompt tensor; token-id rows are padded for you, so leave it out');
    }
    return fromRows(prompts as readonly (readonly number[])[], vocabSize);
  }
  if (isEmbedded(prompts)) {
    if (paddingMask) throw new Error('generate: give the prompt embeddings\' mask as prompts.paddingMask, not options.paddingMask');
    return fromEmbeddings(prompts, hiddenSize);
  }
  throw new Error(
    'generate: prompts must be token-id rows (number[][]), an int32 [B, T] tensor or { inputsEmbeds, paddingMask }, ' +
      `got ${describe(prompts)}`,
  );
}

/** The left-padded ids [B][T] of a batch (embedded prompts have none). */
export function paddedIds(prompts: PromptBatch, padTokenId: number): number[][] {
  return prompts.ids.map((row, b) => [...new Array<number>(prompts.padding[b]!).fill(padTokenId), ...row]);
}

/** The prompt's padding mask [B][T]: 0 for the leading padding, 1 for real positions. */
export function promptMask(prompts: PromptBatch): number[][] {
  return prompts.padding.map((pad) => Array.from({ length: prompts.length }, (_, t) => (t < pad ? 0 : 1)));
}

function fromRows(rows: readonly (readonly number[])[], vocabSize: number): PromptBatch {
  if (rows.length === 0) throw new Error('generate: got no prompts (an empty list); give at least one row of token ids');
  const ids = rows.map((row, b) => {
    if (!Array.isArray(row) && !ArrayBuffer.isView(row)) {
      const hint = typeof row === 'number' ? ' (for a single prompt, wrap it: [[...ids]])' : '';
      throw new Error(`generate: prompt ${b} must be an array of token ids, got ${describe(row)}${hint}`);
    }
    if (row.length === 0) {
      throw new Error(`generate: prompt ${b} is empty; every row needs at least one token (e.g. the BOS id) to condition on`);
    }
    checkIds(row, vocabSize, `prompt ${b}`);
    return Array.from(row);
  });
  const length = Math.max(...ids.map((r) => r.length));
  return {
    batch: ids.length,
    length,
    ids,
    realLengths: ids.map((r) => r.length),
    padding: ids.map((r) => length - r.length),
    inputsEmbeds: null,
  };
}

function fromIdTensor(tensor: tf.Tensor, vocabSize: number, mask: tf.Tensor | undefined): PromptBatch {
  if (tensor.rank !== 2 || tensor.dtype !== 'int32') {
    throw new Error(`generate: a prompt tensor must be int32 token ids [B, T], got ${tensor.dtype} [${tensor.shape}]`);
  }
  const [batch, length] = tensor.shape as [number, number];
  if (batch === 0 || length === 0) throw new Error(`generate: the prompt tensor is empty ([${tensor.shape}]); give at least one token per row`);
  const padding = leadingPadding(mask, batch, length, 'paddingMask');
  const values = tensor.dataSync();
  const ids = padding.map((pad, b) => Array.from(values.subarray(b * length + pad, (b + 1) * length)));
  ids.forEach((row, b) => checkIds(row, vocabSize, `prompt ${b}`));
  return { batch, length, ids, realLengths: ids.map((r) => r.length), padding, inputsEmbeds: null };
}

function fromEmbeddings(prompts: EmbeddedPrompts, hiddenSize: number): PromptBatch {
  const embeds = prompts.inputsEmbeds;
  if (!(embeds instanceof tf.Tensor) || embeds.rank !== 3 || embeds.dtype !== 'float32' || embeds.shape[2] !== hiddenSize) {
    const got = embeds instanceof tf.Tensor ? `${embeds.dtype} [${embeds.shape}]` : describe(embeds);
    throw new Error(`generate: prompts.inputsEmbeds must be float32 [B, T, ${hiddenSize}] (the model width), got ${got}`);
  }
  const [batch, length] = embeds.shape as [number, number, number];
  if (batch === 0 || length === 0) throw new Error(`generate: prompts.inputsEmbeds is empty ([${embeds.shape}]); give at least one position per row`);
  const padding = leadingPadding(prompts.paddingMask, batch, length, 'prompts.paddingMask');
  return {
    batch,
    length,
    ids: padding.map(() => []),
    realLengths: padding.map((pad) => length - pad),
    padding,
    inputsEmbeds: embeds,
  };
}

/** Reads a left-padding mask [B, T] into per-row padding counts; a missing mask means no padding. */
function leadingPadding(mask: tf.Tensor | undefined, batch: number, length: number, name: string): number[] {
  if (mask === undefined) return new Array<number>(batch).fill(0);
  if (!(mask instanceof tf.Tensor) || mask.rank !== 2 || mask.shape[0] !== batch || mask.shape[1] !== length) {
    throw new Error(`generate: ${name} must be [${batch}, ${length}] like the prompts (1 real, 0 padding), got ${describeTensor(mask)}`);
  }
  const values = mask.dataSync();
  return Array.from({ length: batch }, (_, b) => {
    const row = values.subarray(b * length, (b + 1) * length);
    const bad = Array.from(row).findIndex((v) => v !== 0 && v !== 1);
    if (bad >= 0) throw new Error(`generate: ${name} must hold only 0 and 1, got ${row[bad]} at row ${b}, position ${bad}`);
    const pad = row.indexOf(1);
    if (pad < 0) throw new Error(`generate: prompt ${b} is empty (its ${name} row is all 0); every row needs at least one real token`);
    for (let t = pad; t < length; t++) {
      if (row[t] !== 1) {
        throw new Error(
          `generate: prompt ${b} is not left-padded (${name} has a 0 at position ${t} after real tokens); ` +
            'put the padding before the prompt so every row ends in its last real token',
        );
      }
    }
    return pad;
  });
}

function checkIds(row: ArrayLike<number>, vocabSize: number, what: string): void {
  for (let i = 0; i < row.length; i++) {
    const id = row[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new Error(
        `generate: ${what} has token id ${id} at position ${i}, outside the model's vocabulary [0, ${vocabSize}); ` +
          'encode with the model\'s own tokenizer, or resize the embeddings after adding tokens',
      );
    }
  }
}

function isEmbedded(value: unknown): value is EmbeddedPrompts {
  return typeof value === 'object' && value !== null && 'inputsEmbeds' in value;
}

function describeTensor(value: unknown): string {
  return value instanceof tf.Tensor ? `${value.dtype} [${value.shape}]` : describe(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return typeof value;
}
