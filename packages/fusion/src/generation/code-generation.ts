/**
 * The shared loop that generates a grid of discrete image codes after a prompt, one code per backbone step with
 * the backbone's KV cache: Chameleon (codes in the text vocabulary, Team 2024) and Janus (a separate generation
 * embedding and head, Wu et al. 2024) differ only in two hooks, how a code enters the backbone and how a hidden
 * state becomes code logits. Classifier-free guidance (Ho & Salimans 2021) runs the conditional and unconditional
 * prompts as one doubled batch, rows interleaved (2i conditional, 2i+1 unconditional, Janus's layout), mixes
 * uncond + w * (cond - uncond) on the raw code logits, and feeds the sampled code to both rows.
 *
 *   const codes = await generateCodes(backbone, {
 *     prompt: { inputsEmbeds, paddingMask },                   // [B, T, D], ending with the begin-image marker
 *     hooks: { embedCode: (ids) => ..., codeLogits: ({ hidden, logits }) => ... },
 *     numCodes: 16, guidance: 3, unconditional: { inputsEmbeds: u }, temperature: 1, topK: 8, seed: 1,
 *   });                                                        // int32 [B, 16]; the caller disposes it
 *
 * The backbone's own machinery does the work: createCache / forward with a cache (positions and the causal +
 * padding bias derived from the padding mask as in text generation), core's logits processors and samplers.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng, argmaxPerRow, buildLogitsProcessors, classifierFreeGuidanceFromBatch, globalRandom, samplePerRow } from '@chimera/core';
import type { CausalLM, CausalLMInputs } from '@chimera/llm';

/** A prompt as the backbone takes it: embeddings [B, T, D], left-padded rows marked 0 in the padding mask. */
export interface CodePrompt {
  /** float32 [B, T, D]. */
  inputsEmbeds: tf.Tensor;
  /** [B, T], 1 real and 0 padding (default all real). Prompts are left-padded, so the last position is real. */
  paddingMask?: tf.Tensor;
}

/** How codes meet the backbone (Chameleon: grown text rows; Janus: gen_aligner(gen_embed) and gen_head). */
export interface CodeGenerationHooks {
  /** Code ids int32 [R] -> input embeddings [R, D] (or [R, 1, D]) of the backbone. */
  embedCode(ids: tf.Tensor1D): tf.Tensor;
  /**
   * The backbone's output at the last position -> code logits [R, K]: `hidden` [R, D] after the final norm,
   * `logits` [R, V] from the LM head.
   */
  codeLogits(last: { hidden: tf.Tensor2D; logits: tf.Tensor2D }): tf.Tensor2D;
}

/** Options of {@link generateCodes}. */
export interface CodeGenerationOptions {
  /** The conditional prompt (what follows it is the first code). */
  prompt: CodePrompt;
  /** The unconditional prompt of each row (same batch size), needed by guidance. */
  unconditional?: CodePrompt;
  /** The two hooks. */
  hooks: CodeGenerationHooks;
  /** Codes per item: the grid (e.g. 16 for 4x4); generation stops after exactly this many. */
  numCodes: number;
  /** Codebook size K: what codeLogits must return per row. */
  codebookSize: number;
  /** A cap on generated tokens (default numCodes); smaller than numCodes is an error. */
  maxNewTokens?: number;
  /** Classifier-free guidance scale w (needs `unconditional`); 1 gives the conditional distribution. */
  guidance?: number;
  /** Sample (default true when temperature or topK is set) or take the argmax. */
  doSample?: boolean;
  /** Sampling temperature > 0 (default 1). */
  temperature?: number;
  /** Keep the k most likely codes (0 = off). */
  topK?: number;
  /** Seed of the sampler (default: the global generator). */
  seed?: number;
  /** Use the KV cache (default true); false re-runs the whole sequence each step (slow; for checks). */
  useCache?: boolean;
  /** Forward context for inserted blocks (cross-attention media), passed to every step. */
  context?: Record<string, unknown>;
}

/**
 * Generates `numCodes` codes per prompt row, autoregressively with the KV cache. Returns int32 [B, numCodes],
 * owned by the caller. Every other tensor made here is freed, whether the run ends or throws.
 */
export async function generateCodes(backbone: CausalLM, options: CodeGenerationOptions): Promise<tf.Tensor2D> {
  const plan = planCodeGeneration(backbone, options);
  const { batch, numCodes, guided, rows } = plan;
  const processors = buildLogitsProcessors({ temperature: plan.temperature, topK: plan.topK });
  const rng = plan.doSample ? (options.seed !== undefined ? new Rng(options.seed) : globalRandom()) : null;
  const prompt: JoinedPrompt = tf.tidy(() => joinPrompts(options.prompt, guided ? options.unconditional! : null));
  const cache = plan.useCache ? backbone.createCache(rows) : null;
  const codes: number[][] = Array.from({ length: batch }, () => []);
  const embedded: tf.Tensor[] = []; // [R, 1, D] per generated code (no-cache mode re-reads them)
  try {
    for (let step = 0; step < numCodes; step++) {
      const logits = tf.tidy(() => {
        const inputs = stepInputs(prompt, embedded, step, cache);
        const out = backbone.forward({ ...inputs, ...(options.context ? { context: options.context } : {}) }, { lastLogitsOnly: true, heads: false });
        const [r, t, d] = out.hidden.shape as [number, number, number];
        const hidden = tf.reshape(tf.slice(out.hidden, [0, t - 1, 0], [r, 1, d]), [r, d]) as tf.Tensor2D;
        const vocabLogits = tf.reshape(out.logits, [r, out.logits.shape[2]!]) as tf.Tensor2D;
        const code = options.hooks.codeLogits({ hidden, logits: vocabLogits });
        checkCodeLogits(code, rows, plan.codebookSize);
        const mixed = guided ? classifierFreeGuidanceFromBatch(code, plan.guidance!, 'interleaved') : code;
        return processors.process(mixed, codes);
      });
      let sampled: number[];
      try {
        const values = await logits.data();
        sampled = rng ? samplePerRow(values, plan.codebookSize, rng) : argmaxPerRow(values, plan.codebookSize);
      } finally {
        logits.dispose();
      }
      sampled.forEach((c, b) => codes[b]!.push(c));
      if (step + 1 === numCodes) break;
      // Both rows of a guided pair continue with the code sampled for the pair.
      const fed = guided ? sampled.flatMap((c) => [c, c]) : sampled;
      embedded.push(
        tf.tidy(() => {
          const e = options.hooks.embedCode(tf.tensor1d(fed, 'int32'));
          const d = e.shape[e.rank - 1]!;
          if (e.size !== rows * d) throw new Error(`generateCodes: embedCode returned [${e.shape}] for ${rows} ids; expected [${rows}, D]`);
          return tf.reshape(e, [rows, 1, d]);
        }),
      );
      if (cache) tf.dispose(embedded.splice(0, embedded.length - 1)); // the cache holds what came before
    }
  } finally {
    cache?.dispose();
    tf.dispose([prompt.embeds, prompt.mask, ...embedded]);
  }
  return tf.tensor2d(codes, [batch, numCodes], 'int32');
}

interface CodePlan {
  batch: number;
  rows: number;
  numCodes: number;
  codebookSize: number;
  guided: boolean;
  guidance: number | undefined;
  doSample: boolean;
  temperature: number | undefined;
  topK: number | undefined;
  useCache: boolean;
}

/** Checks every option before any tensor work. */
function planCodeGeneration(backbone: CausalLM, options: CodeGenerationOptions): CodePlan {
  const { prompt, unconditional, numCodes, codebookSize } = options;
  if (!Number.isInteger(numCodes) || numCodes < 1) {
    throw new Error(`generateCodes: numCodes must be a positive integer (the item's grid, e.g. 16 for 4x4), got ${numCodes}`);
  }
  if (!Number.isInteger(codebookSize) || codebookSize < 1) {
    throw new Error(`generateCodes: codebookSize must be a positive integer, got ${codebookSize}`);
  }
  if (options.maxNewTokens !== undefined && !(options.maxNewTokens >= numCodes)) {
    throw new Error(
      `generateCodes: the generation budget maxNewTokens = ${options.maxNewTokens} is smaller than the grid of ${numCodes} codes, ` +
        `so the image could not be completed; raise maxNewTokens to at least ${numCodes} (or leave it unset)`,
    );
  }
  if (!prompt || !prompt.inputsEmbeds) throw new Error('generateCodes: prompt.inputsEmbeds [B, T, D] is required');
  const batch = checkPrompt(prompt, 'prompt', backbone.config.hiddenSize);
  const guidance = options.guidance;
  if (guidance !== undefined && !Number.isFinite(guidance)) throw new Error(`generateCodes: guidance must be a finite number, got ${guidance}`);
  const guided = guidance !== undefined;
  if (guided && !unconditional) {
    throw new Error(
      `generateCodes: guidance ${guidance} needs an unconditional prompt (the same rows without their condition), but none was given; ` +
        'pass `unconditional`, or drop `guidance` for unguided sampling',
    );
  }
  if (unconditional && !guided) {
    throw new Error('generateCodes: an unconditional prompt was given without a guidance scale; pass `guidance` (e.g. 3) or drop `unconditional`');
  }
  if (unconditional) {
    const ub = checkPrompt(unconditional, 'unconditional', backbone.config.hiddenSize);
    if (ub !== batch) throw new Error(`generateCodes: the unconditional prompt has ${ub} rows but the prompt has ${batch}; give one per row`);
  }
  const length = Math.max(prompt.inputsEmbeds.shape[1]!, unconditional?.inputsEmbeds.shape[1] ?? 0);
  const maxPositions = backbone.config.maxPositionEmbeddings;
  if (length + numCodes > maxPositions) {
    throw new Error(
      `generateCodes: a prompt of ${length} positions plus ${numCodes} codes exceeds the backbone's maxPositionEmbeddings ${maxPositions}; ` +
        'shorten the prompt or use a smaller grid',
    );
  }
  const { temperature, topK } = options;
  if (temperature !== undefined && !(Number.isFinite(temperature) && temperature > 0)) {
    throw new Error(`generateCodes: temperature must be a finite number > 0, got ${temperature}`);
  }
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 0)) throw new Error(`generateCodes: topK must be an integer >= 0, got ${topK}`);
  const doSample = options.doSample ?? (temperature !== undefined || (topK ?? 0) > 0);
  return {
    batch,
    rows: guided ? 2 * batch : batch,
    numCodes,
    codebookSize,
    guided,
    guidance,
    doSample,
    temperature: doSample ? temperature : undefined,
    topK: doSample ? topK : undefined,
    useCache: options.useCache ?? true,
  };
}

function checkPrompt(prompt: CodePrompt, name: string, hiddenSize: number): number {
  const e = prompt.inputsEmbeds;
  if (e.rank !== 3 || e.shape[2] !== hiddenSize || e.shape[1]! < 1) {
    throw new Error(`generateCodes: ${name}.inputsEmbeds must be [B, T, ${hiddenSize}] with T >= 1, got [${e.shape}]`);
  }
  const m = prompt.paddingMask;
  if (m && (m.rank !== 2 || m.shape[0] !== e.shape[0] || m.shape[1] !== e.shape[1])) {
    throw new Error(`generateCodes: ${name}.paddingMask must be [${e.shape[0]}, ${e.shape[1]}] like its embeddings, got [${m.shape}]`);
  }
  return e.shape[0]!;
}

function checkCodeLogits(logits: tf.Tensor, rows: number, codebookSize: number): void {
  if (logits.rank !== 2 || logits.shape[0] !== rows || logits.shape[1] !== codebookSize) {
    throw new Error(`generateCodes: hooks.codeLogits must return [${rows}, ${codebookSize}] (rows x codebook), got [${logits.shape}]`);
  }
}

type JoinedPrompt = {
  embeds: tf.Tensor;
  mask: tf.Tensor;
};

/** The prompt rows, or conditional and unconditional rows interleaved, left-padded to one length. */
function joinPrompts(cond: CodePrompt, uncond: CodePrompt | null): JoinedPrompt {
  const mask = (p: CodePrompt) => (p.paddingMask ? tf.cast(p.paddingMask, 'float32') : tf.ones(p.inputsEmbeds.shape.slice(0, 2)));
  if (!uncond) return { embeds: tf.clone(cond.inputsEmbeds), mask: mask(cond) };
  const length = Math.max(cond.inputsEmbeds.shape[1]!, uncond.inputsEmbeds.shape[1]!);
  const leftPad = (p: CodePrompt): JoinedPrompt => {
    const [b, t, d] = p.inputsEmbeds.shape as [number, number, number];
    const m = mask(p);
    if (t === length) return { embeds: p.inputsEmbeds, mask: m };
    return { embeds: tf.concat([tf.zeros([b, length - t, d]), p.inputsEmbeds], 1), mask: tf.concat([tf.zeros([b, length - t]), m], 1) };
  };
  const c = leftPad(cond);
  const u = leftPad(uncond);
  const [b, , d] = c.embeds.shape as [number, number, number];
  return {
    embeds: tf.reshape(tf.stack([c.embeds, u.embeds], 1), [2 * b, length, d]),
    mask: tf.reshape(tf.stack([c.mask, u.mask], 1), [2 * b, length]),
  };
}

/** The forward inputs of one step: the prompt (prefill), then the last code (cache) or everything (no cache). */
function stepInputs(prompt: JoinedPrompt, embedded: readonly tf.Tensor[], step: number, cache: CausalLMInputs['cache'] | null): CausalLMInputs {
  const rows = prompt.mask.shape[0]!;
  const mask = step === 0 ? prompt.mask : tf.concat([prompt.mask, tf.ones([rows, step])], 1);
  if (step === 0) return { inputsEmbeds: prompt.embeds, paddingMask: mask, ...(cache ? { cache } : {}) };
  if (cache) return { inputsEmbeds: embedded[embedded.length - 1]!, paddingMask: mask, cache };
  return { inputsEmbeds: tf.concat([prompt.embeds, ...embedded], 1), paddingMask: mask };
}
