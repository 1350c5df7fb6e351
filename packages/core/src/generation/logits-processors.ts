/**
 * Logits processors: pure functions of next-token logits [B, V] and the tokens each row holds so far, run in
 * order before a sampler picks a token. Temperature; top-k; top-p / nucleus (Holtzman et al. 2019, "The
 * Curious Case of Neural Text Degeneration"); min-p (Nguyen et al. 2024, "Turning Up the Heat: Min-p
 * Sampling"); the CTRL repetition penalty (Keskar et al. 2019) with Hugging Face's semantics; token
 * suppression and allow-lists (to confine a shared vocabulary to image codes, as Chameleon-style models do).
 *
 * Ownership: `process` never disposes its input and always returns a new tensor the caller must dispose.
 * Filters set removed tokens to -Infinity, so apply classifier-free guidance (guidance.ts) before them:
 * guidance subtracts logits, and -Infinity minus -Infinity is NaN.
 */
import * as tf from '@tensorflow/tfjs';

/** Per row, every token id so far (prompt then generated); `tokens[b]` belongs to logits row b. */
export type TokenRows = ReadonlyArray<ArrayLike<number>>;

/**
 * One step of the sampling pipeline: next-token logits [B, V] in, new logits out. Never disposes its input; the
 * caller disposes the result.
 */
export interface LogitsProcessor {
  /** logits [B, V] -> new logits [B, V]. `tokens` is needed only by history-aware processors. */
  process(logits: tf.Tensor2D, tokens?: TokenRows): tf.Tensor2D;
}

/** Applies processors in order; intermediate tensors are freed, the input is left to the caller. */
export class LogitsProcessorList implements LogitsProcessor {
  /** The processors, in the order they run. */
  readonly processors: readonly LogitsProcessor[];

  constructor(processors: readonly LogitsProcessor[]) {
    this.processors = [...processors];
  }

  process(logits: tf.Tensor2D, tokens: TokenRows = []): tf.Tensor2D {
    checkLogits(logits, 'LogitsProcessorList');
    return tf.tidy(() => {
      let current = logits;
      for (const processor of this.processors) current = processor.process(current, tokens);
      // Always hand back a tensor the caller owns, even for an empty list.
      return current === logits ? tf.clone(logits) : current;
    });
  }
}

/** Divides logits by T: T < 1 sharpens the distribution, T > 1 flattens it. */
export class TemperatureProcessor implements LogitsProcessor {
  /** The divisor T (> 0). */
  readonly temperature: number;

  constructor(temperature: number) {
    if (!(temperature > 0) || !Number.isFinite(temperature)) {
      throw new Error(
        `TemperatureProcessor: expected a finite temperature > 0, got ${temperature}; for argmax decoding use greedyTokens instead of temperature 0`,
      );
    }
    this.temperature = temperature;
  }

  process(logits: tf.Tensor2D): tf.Tensor2D {
    checkLogits(logits, 'TemperatureProcessor');
    return tf.tidy(() => (this.temperature === 1 ? tf.clone(logits) : tf.div(logits, tf.scalar(this.temperature))));
  }
}

/**
 * Keeps the k highest logits per row. Tokens tied with the k-th value are all kept (the cut is a threshold),
 * which is also what Hugging Face does.
 */
export class TopKProcessor implements LogitsProcessor {
  /** Logits kept per row (ties with the k-th are kept too). */
  readonly k: number;

  constructor(k: number, minTokensToKeep = 1) {
    if (!Number.isInteger(k) || k < 1) throw new Error(`TopKProcessor: expected an integer k >= 1, got ${k}`);
    checkMinTokens(minTokensToKeep, 'TopKProcessor');
    this.k = Math.max(k, minTokensToKeep);
  }

  process(logits: tf.Tensor2D): tf.Tensor2D {
    const [batch, vocab] = checkLogits(logits, 'TopKProcessor');
    return tf.tidy(() => {
      if (this.k >= vocab) return tf.clone(logits);
      const best = tf.topk(logits, this.k).values; // [B, k], descending
      const kthBest = tf.slice(best, [0, this.k - 1], [batch, 1]); // [B, 1]
      return maskBelow(logits, kthBest);
    });
  }
}

/**
 * Nucleus filtering: keeps, per row, the smallest set of most likely tokens whose probability mass reaches p
 * (always at least `minTokensToKeep`). A prefix whose mass is within `MASS_TOLERANCE` of p counts as reaching
 * it, so float32 rounding does not pull in one more token when a prefix hits p exactly. The cut is a logit
 * threshold, so tokens tied with the last kept one are kept too.
 */
export class TopPProcessor implements LogitsProcessor {
  /**
   * Slack when comparing a prefix's probability mass with p, so float32 rounding does not keep one token too many.
   */
  static readonly MASS_TOLERANCE = 1e-6;
  /** Nucleus mass in (0, 1]. */
  readonly p: number;
  /** Tokens always kept per row, whatever their mass. */
  readonly minTokensToKeep: number;

  constructor(p: number, minTokensToKeep = 1) {
    if (!(p > 0 && p <= 1)) throw new Error(`TopPProcessor: expected 0 < p <= 1, got ${p}`);
    checkMinTokens(minTokensToKeep, 'TopPProcessor');
    this.p = p;
    this.minTokensToKeep = minTokensToKeep;
  }

  process(logits: tf.Tensor2D): tf.Tensor2D {
    const [, vocab] = checkLogits(logits, 'TopPProcessor');
    return tf.tidy(() => {
      if (this.p === 1 || this.minTokensToKeep >= vocab) return tf.clone(logits);
      const sorted = tf.topk(logits, vocab).values; // [B, V], descending
      const massBefore = tf.cumsum(tf.softmax(sorted), 1, true); // exclusive: mass of the better tokens
      // A token stays while the tokens ranked above it have not yet reached p.
      // The rank floor also keeps the best token when p is below the tolerance.
      const rank = tf.reshape(tf.range(0, vocab, 1, 'int32'), [1, vocab]);
      const keep = tf.logicalOr(
        tf.less(massBefore, tf.scalar(this.p - TopPProcessor.MASS_TOLERANCE)),
        tf.less(rank, tf.scalar(this.minTokensToKeep, 'int32')),
      );
      const threshold = tf.min(select(keep, sorted, tf.scalar(Infinity)), 1, true); // [B, 1]
      return maskBelow(logits, threshold);
    });
  }
}

/**
 * Keeps tokens whose probability is at least `minP` times the row's top probability. Done in logit space,
 * logit >= max + log(minP), so it needs no softmax and is exact for any temperature applied before it.
 */
export class MinPProcessor implements LogitsProcessor {
  /** Fraction of the top probability a token needs to be kept, in [0, 1]. */
  readonly minP: number;

  constructor(minP: number) {
    if (!(minP >= 0 && minP <= 1)) throw new Error(`MinPProcessor: expected 0 <= minP <= 1, got ${minP}`);
    this.minP = minP;
  }

  process(logits: tf.Tensor2D): tf.Tensor2D {
    checkLogits(logits, 'MinPProcessor');
    return tf.tidy(() => {
      if (this.minP === 0) return tf.clone(logits);
      const threshold = tf.add(tf.max(logits, 1, true), tf.scalar(Math.log(this.minP)));
      return maskBelow(logits, threshold);
    });
  }
}

/**
 * CTRL repetition penalty with Hugging Face's semantics: for every distinct token already in the row (prompt
 * included), a positive logit is divided by the penalty and a negative one multiplied by it, so penalty > 1
 * always makes a seen token less likely. A token seen several times is penalised once.
 */
export class RepetitionPenaltyProcessor implements LogitsProcessor {
  /** Penalty (> 1 discourages seen tokens, 1 = off). */
  readonly penalty: number;

  constructor(penalty: number) {
    if (!(penalty > 0) || !Number.isFinite(penalty)) {
      throw new Error(`RepetitionPenaltyProcessor: expected a finite penalty > 0 (1 = off, > 1 discourages repeats), got ${penalty}`);
    }
    this.penalty = penalty;
  }

  process(logits: tf.Tensor2D, tokens?: TokenRows): tf.Tensor2D {
    const [batch, vocab] = checkLogits(logits, 'RepetitionPenaltyProcessor');
    if (!tokens || tokens.length !== batch) {
      throw new Error(
        `RepetitionPenaltyProcessor: expected the tokens of each of the ${batch} logits rows, got ${tokens ? tokens.length : 'none'}; pass the ids generated so far (prompt included) as the second argument`,
      );
    }
    const seen = new Uint8Array(batch * vocab); // [B, V] 0/1, built on the JS side: ids are JS numbers already
    tokens.forEach((row, b) => {
      for (let i = 0; i < row.length; i++) {
        const id = row[i]!;
        if (!Number.isInteger(id) || id < 0 || id >= vocab) {
          throw new Error(`RepetitionPenaltyProcessor: row ${b} holds token id ${id} at position ${i}, outside the vocabulary [0, ${vocab})`);
        }
        seen[b * vocab + id] = 1;
      }
    });
    return tf.tidy(() => {
      if (this.penalty === 1) return tf.clone(logits);
      const penalised = select(
        tf.less(logits, tf.scalar(0)),
        tf.mul(logits, tf.scalar(this.penalty)),
        tf.div(logits, tf.scalar(this.penalty)),
      );
      return select(tf.cast(tf.tensor2d(seen, [batch, vocab], 'int32'), 'bool'), penalised, logits);
    });
  }
}

/** Forbids the given token ids (sets their logits to -Infinity). Ids outside the vocabulary are an error. */
export class SuppressTokensProcessor implements LogitsProcessor {
  /** The forbidden ids. */
  readonly tokenIds: readonly number[];

  constructor(tokenIds: readonly number[]) {
    this.tokenIds = [...tokenIds];
  }

  process(logits: tf.Tensor2D): tf.Tensor2D {
    const [, vocab] = checkLogits(logits, 'SuppressTokensProcessor');
    const blocked = idMask(this.tokenIds, vocab, 'SuppressTokensProcessor');
    return tf.tidy(() => select(tf.cast(tf.tensor2d(blocked, [1, vocab], 'int32'), 'bool'), tf.scalar(-Infinity), logits));
  }
}

/**
 * Allows only the given token ids, e.g. the image-code range of a shared text+image vocabulary while an image
 * is being generated. Pass `allowedTokenRange(start, end)` for a contiguous range.
 */
export class AllowTokensProcessor implements LogitsProcessor {
  /** The only ids that may be produced. */
  readonly tokenIds: readonly number[];

  constructor(tokenIds: readonly number[]) {
    if (tokenIds.length === 0) throw new Error('AllowTokensProcessor: expected at least one allowed token id, got none');
    this.tokenIds = [...tokenIds];
  }

  process(logits: tf.Tensor2D): tf.Tensor2D {
    const [, vocab] = checkLogits(logits, 'AllowTokensProcessor');
    const allowed = idMask(this.tokenIds, vocab, 'AllowTokensProcessor');
    return tf.tidy(() => select(tf.cast(tf.tensor2d(allowed, [1, vocab], 'int32'), 'bool'), logits, tf.scalar(-Infinity)));
  }
}

/** The ids start, start + 1, ..., end - 1. */
export function allowedTokenRange(start: number, end: number): number[] {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end <= start) {
    throw new Error(`allowedTokenRange: expected integers 0 <= start < end, got start ${start}, end ${end}`);
  }
  return Array.from({ length: end - start }, (_, i) => start + i);
}

/** Options of {@link buildLogitsProcessors}; unset or neutral values add no processor. */
export interface LogitsProcessorOptions {
  /** > 1 discourages tokens already present (1 = off). */
  repetitionPenalty?: number;
  /** Token ids that may never be produced. */
  suppressTokens?: readonly number[];
  /** If set, only these token ids may be produced. */
  allowTokens?: readonly number[];
  /** Applied before the filters, so they see the tempered distribution (Hugging Face's order). */
  temperature?: number;
  /** Keep the k best (0 = off, as in HF; negative is an error). */
  topK?: number;
  /** Nucleus mass in (0, 1] (1 = off; outside the range is an error). */
  topP?: number;
  /** Keep tokens with at least minP times the top probability (0 = off). */
  minP?: number;
  /** Floor on how many tokens top-k and top-p keep (default 1). */
  minTokensToKeep?: number;
}

/**
 * The usual sampling pipeline in Hugging Face's order: penalties and vocabulary restrictions on the raw
 * logits, then temperature, then top-k, top-p and min-p. Unset or neutral options add nothing.
 */
export function buildLogitsProcessors(options: LogitsProcessorOptions): LogitsProcessorList {
  const list: LogitsProcessor[] = [];
  const keep = options.minTokensToKeep ?? 1;
  if (options.repetitionPenalty !== undefined && options.repetitionPenalty !== 1) {
    list.push(new RepetitionPenaltyProcessor(options.repetitionPenalty));
  }
  if (options.suppressTokens && options.suppressTokens.length > 0) list.push(new SuppressTokensProcessor(options.suppressTokens));
  if (options.allowTokens) list.push(new AllowTokensProcessor(options.allowTokens));
  if (options.temperature !== undefined && options.temperature !== 1) list.push(new TemperatureProcessor(options.temperature));
  if (options.topK !== undefined && options.topK !== 0) list.push(new TopKProcessor(options.topK, keep));
  if (options.topP !== undefined && options.topP !== 1) list.push(new TopPProcessor(options.topP, keep));
  if (options.minP !== undefined && options.minP > 0) list.push(new MinPProcessor(options.minP));
  return new LogitsProcessorList(list);
}

/** Checks logits are [B, V] float and returns [B, V]. */
export function checkLogits(logits: tf.Tensor, who: string): [number, number] {
  if (logits.rank !== 2) {
    throw new Error(`${who}: expected logits of shape [batch, vocab], got [${logits.shape}]; slice the last position first (logits[:, -1, :])`);
  }
  if (logits.dtype !== 'float32') throw new Error(`${who}: expected float32 logits, got ${logits.dtype}`);
  return [logits.shape[0]!, logits.shape[1]!];
}

/** tf.where with the element types loosened (tfjs types `a` and `b` as one rank) and a 2-D result. */
function select(condition: tf.Tensor, a: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  return tf.where(condition, a, b) as tf.Tensor2D;
}

/** Sets logits strictly below a per-row threshold [B, 1] to -Infinity. */
function maskBelow(logits: tf.Tensor2D, threshold: tf.Tensor): tf.Tensor2D {
  return select(tf.less(logits, threshold), tf.scalar(-Infinity), logits);
}

function checkMinTokens(minTokensToKeep: number, who: string): void {
  if (!Number.isInteger(minTokensToKeep) || minTokensToKeep < 1) {
    throw new Error(`${who}: expected an integer minTokensToKeep >= 1, got ${minTokensToKeep}`);
  }
}

function idMask(ids: readonly number[], vocab: number, who: string): Int32Array {
  const mask = new Int32Array(vocab);
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new Error(`${who}: token id ${id} is outside the vocabulary [0, ${vocab}) of these logits`);
    }
    mask[id] = 1;
  }
  return mask;
}
