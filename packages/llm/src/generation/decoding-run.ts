/**
 * One generation, step by step: the prefill forward over the left-padded prompts, then one forward per new
 * token that reads and extends the KV cache (or, without a cache, re-runs the whole sequence), the logits
 * processors and the sampler, the stop checks, and padding for finished rows. Only the cache outlives a step:
 * every other tensor is made and freed inside the step, so `dispose()` (always called by the stream's
 * `finally`) leaves nothing behind, whether the run ends, throws or is abandoned early.
 */
import * as tf from '@tensorflow/tfjs';
import { FinishedRows, MASK_VALUE, TemperatureProcessor, argmaxPerRow, causalBias, samplePerRow, type KVCache } from '@chimera/core';
import type { CausalLMInputs } from '../model/inputs';
import { StreamDecoder } from '../tokenizers/stream-decoder';
import { paddedIds, promptMask } from './batch-prompts';
import type { FinishReason, GenerationPlan, GenerationResult, GenerationStep } from './options';

export class DecodingRun {
  private readonly plan: GenerationPlan;
  private readonly cache: KVCache | null;
  /** Per row: prompt ids (none for embedded prompts), then its generated tokens (never padding). */
  private readonly history: number[][];
  /** [B][steps so far]: what each step emitted, padding included. */
  private readonly emitted: number[][];
  /** The padding mask of the sequence so far [B][T + steps]; generated tokens (and finished rows' padding) count as real. */
  private readonly mask: number[][];
  private readonly finished: FinishedRows;
  private readonly reasons: (FinishReason | null)[];
  private readonly decoders: StreamDecoder[] | null;
  /**
   * Whether forward calls get the padding mask. Without padding (every prompt token real, e.g. batch 1) and with
   * nothing inserted that could read it, the mask's positions and bias equal the model's defaults (sequential
   * positions, the causal mask: bit for bit), so it is left out: that saves ~20 tensor ops per decode step.
   */
  private readonly passMask: boolean;
  private steps = 0;

  constructor(plan: GenerationPlan) {
    this.plan = plan;
    const { batch } = plan.prompts;
    this.history = plan.prompts.ids.map((row) => [...row]);
    this.emitted = Array.from({ length: batch }, () => []);
    this.mask = promptMask(plan.prompts);
    this.passMask = this.mask.some((row) => row.includes(0)) || plan.model.model.inserted.list().length > 0;
    this.finished = new FinishedRows(batch);
    this.reasons = new Array<FinishReason | null>(batch).fill(null);
    const { tokenizer } = plan;
    this.decoders = tokenizer
      ? Array.from({ length: batch }, () => new StreamDecoder(tokenizer, { skipSpecialTokens: plan.skipSpecialTokens }))
      : null;
    this.cache = plan.useCache ? plan.model.createCache(batch) : null;
  }

  get done(): boolean {
    return this.finished.allFinished;
  }

  /** Runs one decoding step: forward, processors, sampler, stop checks. */
  async next(): Promise<GenerationStep> {
    if (this.done) throw new Error('DecodingRun.next: every row has finished already');
    const { plan } = this;
    // The raw logits are kept (not read) so that a non-finite value can be traced to the model or a processor.
    const { raw, logits } = tf.tidy(() => {
      const out = plan.model.forward(this.stepInputs(), { lastLogitsOnly: true, heads: false });
      const [batch, , vocab] = out.logits.shape as [number, number, number];
      const raw = tf.reshape(out.logits, [batch, vocab]) as tf.Tensor2D;
      return { raw, logits: plan.processors.process(raw, this.history) };
    });
    let sampled: number[];
    try {
      const vocab = logits.shape[1]!;
      const values = await logits.data();
      // -Infinity is what filters write; NaN and +Infinity leave nothing sensible to pick.
      const bad = firstNonFinite(values, vocab, false);
      if (bad) throw await this.nonFiniteError(bad, raw);
      sampled = plan.rng ? samplePerRow(values, vocab, plan.rng) : argmaxPerRow(values, vocab);
    } finally {
      tf.dispose([raw, logits]);
    }
    return this.record(sampled);
  }

  /** Says whether the model or a logits processor made the step's logits non-finite (the error path only). */
  private async nonFiniteError(processed: BadLogit, raw: tf.Tensor2D): Promise<Error> {
    const { plan } = this;
    const vocab = raw.shape[1]!;
    const at = (bad: BadLogit) => `step ${this.steps}, row ${bad.row}`;
    const fromModel = firstNonFinite(await raw.data(), vocab, true);
    if (fromModel) {
      return new Error(
        `generate: ${at(fromModel)}: the model's logits are ${fromModel.value} at token id ${fromModel.id}, before any logits ` +
          'processor ran, so the model itself produced non-finite values. Likely causes: its weights hold NaN or Inf (a ' +
          'diverged training run or a damaged checkpoint: check that every parameter is finite), or activations overflowed ' +
          '(float16 weights, or inputs far outside what it was trained on).',
      );
    }
    const culprit = this.firstFaultyProcessor(raw);
    if (!culprit) {
      return new Error(`generate: ${at(processed)}: the logits are ${processed.value} at token id ${processed.id} after the logits processors`);
    }
    const processor = plan.processors.processors[culprit.index]!;
    const custom = culprit.index < plan.customProcessors;
    const className = processor.constructor?.name && processor.constructor.name !== 'Object' ? processor.constructor.name : null;
    const who = custom ? `your logitsProcessors[${culprit.index}]${className ? ` (${className})` : ''}` : `the built-in ${className ?? 'logits processor'}`;
    const advice =
      processor instanceof TemperatureProcessor
        ? `temperature ${processor.temperature} is too small for these logits (they overflow float32); raise it, or pass doSample: false for greedy decoding`
        : custom
          ? 'check what that processor computes for these logits'
          : 'this is a bug in a built-in processor; please report it with the options you passed';
    return new Error(
      `generate: ${at(culprit.bad)}: the model's logits are finite, but ${who} turned them into ${culprit.bad.value} at ` +
        `token id ${culprit.bad.id}; ${advice}.`,
    );
  }

  /** Runs the processors one by one on finite logits; the first whose output holds NaN or +Infinity, or null. */
  private firstFaultyProcessor(raw: tf.Tensor2D): { index: number; bad: BadLogit } | null {
    const list = this.plan.processors.processors;
    const made: tf.Tensor[] = [];
    try {
      let current = raw;
      for (let i = 0; i < list.length; i++) {
        current = list[i]!.process(current, this.history);
        made.push(current);
        const bad = firstNonFinite(current.dataSync(), raw.shape[1]!, false);
        if (bad) return { index: i, bad };
      }
      return null;
    } finally {
      tf.dispose(made);
    }
  }

  /** The summary of the run so far (complete once `done`). */
  result(): GenerationResult {
    const { plan } = this;
    const tokens = this.history.map((row, b) => row.slice(plan.prompts.ids[b]!.length));
    const result: GenerationResult = {
      tokens,
      sequences: this.history.map((row) => [...row]),
      finishReasons: this.reasons.map((r) => r ?? 'length'),
      lengths: tokens.map((row) => row.length),
      paddedTokens: this.emitted.map((row) => [...row]),
      steps: this.steps,
      padTokenId: plan.padTokenId,
    };
    const { tokenizer } = plan;
    if (tokenizer) result.text = tokens.map((row) => tokenizer.decode(row, { skipSpecialTokens: plan.skipSpecialTokens }));
    return result;
  }

  /** Frees the KV cache (idempotent). */
  dispose(): void {
    this.cache?.dispose();
  }

  /** Appends the step's tokens, judges the rows, and describes the step. */
  private record(sampled: number[]): GenerationStep {
    const { plan } = this;
    const padded = [...this.finished.finished];
    const tokens = this.finished.padFinished(sampled, plan.padTokenId);
    tokens.forEach((token, b) => {
      this.emitted[b]!.push(token);
      this.mask[b]!.push(1);
      if (!padded[b]) this.history[b]!.push(token);
    });
    this.steps++;

    const promptLengths = plan.prompts.ids.map((row) => row.length);
    const stopped = plan.stop ? plan.stop.isDone({ tokens: this.history, promptLengths }) : tokens.map(() => false);
    const outOfBudget = this.history.map((row, b) => row.length - promptLengths[b]! >= plan.budgets[b]!);
    this.finished.update(tokens.map((_, b) => stopped[b]! || outOfBudget[b]!));
    const newlyFinished = this.finished.finished.map((now, b) => now && !padded[b]);
    newlyFinished.forEach((now, b) => {
      if (now) this.reasons[b] = stopped[b] ? 'stop' : 'length';
    });

    const step: GenerationStep = {
      step: this.steps - 1,
      tokens,
      padded,
      finished: [...this.finished.finished],
      finishReasons: [...this.reasons],
    };
    if (this.decoders) {
      step.text = this.decoders.map((decoder, b) => {
        if (padded[b]) return '';
        const delta = decoder.push(tokens[b]!);
        return newlyFinished[b] ? delta + decoder.flush() : delta;
      });
    }
    return step;
  }

  /** The forward inputs of the next step (tensors belong to the caller's tidy scope). */
  private stepInputs(): CausalLMInputs {
    const { plan } = this;
    const { batch, length } = plan.prompts;
    const steps = this.steps;
    const common = { cache: this.cache ?? undefined, context: plan.context };
    if (steps === 0) {
      return {
        ...common,
        ...this.promptTokens(),
        paddingMask: this.passMask ? tf.tensor2d(this.mask, [batch, length], 'float32') : undefined,
        positions: plan.positions ?? undefined,
        attentionBias: plan.attentionBias ?? undefined,
        tokenModality: plan.tokenModality ?? undefined,
      };
    }
    const total = length + steps;
    if (this.cache) {
      // Feed only the last step's tokens; the cache holds everything before them. New tokens are text (modality 0).
      const last = this.emitted.map((row) => [row[steps - 1]!]);
      return {
        ...common,
        inputIds: tf.tensor2d(last, [batch, 1], 'int32'),
        paddingMask: this.passMask ? tf.tensor2d(this.mask, [batch, total], 'float32') : undefined,
        positions: this.generatedPositions(steps - 1, 1) ?? undefined,
      };
    }
    // Full recomputation: the prompt again, followed by every generated token.
    const paddingMask = tf.tensor2d(this.mask, [batch, total], 'float32');
    const generated = tf.tensor2d(this.emitted, [batch, steps], 'int32');
    const prompt = this.promptTokens();
    const tokens: Pick<CausalLMInputs, 'inputIds' | 'inputsEmbeds'> = prompt.inputIds
      ? { inputIds: tf.concat([prompt.inputIds, generated], 1) }
      : { inputsEmbeds: tf.concat([prompt.inputsEmbeds!, plan.model.model.embed_tokens.forward(generated)], 1) };
    const positions = plan.positions ? tf.concat([plan.positions, this.generatedPositions(0, steps)!], plan.positions.rank - 1) : undefined;
    const tokenModality = plan.tokenModality
      ? tf.concat([plan.tokenModality, tf.zeros([batch, steps], 'int32')], 1)
      : undefined;
    const attentionBias = plan.attentionBias ? extendBias(plan.attentionBias, paddingMask, length, steps) : undefined;
    return { ...common, ...tokens, paddingMask, positions, tokenModality, attentionBias };
  }

  private promptTokens(): Pick<CausalLMInputs, 'inputIds' | 'inputsEmbeds'> {
    const { prompts, padTokenId } = this.plan;
    if (prompts.inputsEmbeds) return { inputsEmbeds: prompts.inputsEmbeds };
    return { inputIds: tf.tensor2d(paddedIds(prompts, padTokenId), [prompts.batch, prompts.length], 'int32') };
  }

  /**
   * With explicit prompt positions: positions of generated tokens `from` .. `from + count - 1`, int32 [B, count]
   * or [A, B, count] (the same value on every M-RoPE axis, as for text after an image in Qwen2-VL).
   */
  private generatedPositions(from: number, count: number): tf.Tensor | null {
    const { positions, nextPositions, prompts } = this.plan;
    if (!positions || !nextPositions) return null;
    const rows = nextPositions.map((next) => Array.from({ length: count }, (_, i) => next + from + i));
    const plane = tf.tensor2d(rows, [prompts.batch, count], 'int32');
    return positions.rank === 3 ? tf.tile(tf.expandDims(plane, 0), [positions.shape[0]!, 1, 1]) : plane;
  }
}

interface BadLogit {
  row: number;
  id: number;
  value: number;
}

/** The first NaN or +Infinity (and -Infinity too when `negative`) of flat [B * V] logits, or null. */
function firstNonFinite(values: ArrayLike<number>, vocab: number, negative: boolean): BadLogit | null {
  for (let p = 0; p < values.length; p++) {
    const v = values[p]!;
    if (Number.isNaN(v) || v === Infinity || (negative && v === -Infinity)) return { row: Math.floor(p / vocab), id: p % vocab, value: v };
  }
  return null;
}

/**
 * The prompt's bias [b, h, T, T] grown to the whole sequence [B, h, T + n, T + n] for full recomputation: the
 * prompt keeps its own bias and never sees generated tokens; a generated token sees the prompt's real tokens
 * and the generated tokens up to itself.
 */
function extendBias(bias: tf.Tensor, paddingMask: tf.Tensor, promptLength: number, generated: number): tf.Tensor {
  const batch = paddingMask.shape[0]!;
  const heads = bias.shape[1]!;
  const prompt = tf.broadcastTo(bias, [batch, heads, promptLength, promptLength]);
  const hidden = tf.fill([batch, heads, promptLength, generated], MASK_VALUE);
  const promptMaskRows = tf.slice(paddingMask, [0, 0], [batch, promptLength]);
  const promptKeys = tf.reshape(tf.mul(tf.sub(1, promptMaskRows), MASK_VALUE), [batch, 1, 1, promptLength]);
  const causal = tf.reshape(causalBias(generated, generated, 0), [1, 1, generated, generated]);
  const top = tf.concat([prompt, hidden], 3);
  const bottom = tf.concat(
    [tf.broadcastTo(promptKeys, [batch, heads, generated, promptLength]), tf.broadcastTo(causal, [batch, heads, generated, generated])],
    3,
  );
  return tf.concat([top, bottom], 2);
}
