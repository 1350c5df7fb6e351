/**
 * Tokenized early fusion (Type D; Chameleon, Team 2024): a VQ tokenizer turns an image into a grid of discrete
 * codes, and the codes become ordinary tokens of one shared vocabulary. The backbone's embeddings and LM head grow
 * by codebookSize + 2 rows (the codes, then the begin- and end-of-image markers) and the text rows stay as they
 * were; an item is the run `<begin> code_0 .. code_{N-1} <end>` with unified ids text vocab + code; one LM loss
 * trains text and codes alike. `generateImage` appends the begin marker to a prompt, samples exactly N codes
 * restricted to the code range (the shared loop in generation/code-generation.ts, with classifier-free
 * guidance), and detokenizes them through the modality.
 *
 *   const image = tokenizedFusion({ zLoss: 1e-5, unconditionalPrompt: [BOS] });
 *   const model = compose({ backbone, modalities: { image: vq }, fusion: { image } });
 *   const { codes, outputs } = await image.generateImage(model, [{ text: 'a red square' }], { guidance: 3, temperature: 1 });
 *
 * A frozen-LLM recipe that trains only the new rows: `frozenTextRows: true`, train the embedding and LM head, and
 * call `restoreTextRows()` after every optimizer step (Trainer's onStep), which writes the text rows back.
 */
import * as tf from '@tensorflow/tfjs';
import { requirePath, type DiscreteCodec, type MediaSegment, type Modality } from '@chimera/core';
import { causalLMLoss, zLoss, type CausalLM } from '@chimera/llm';
import type { ComposedModel } from '../composed-model';
import { generateCodes } from '../generation/code-generation';
import { isSampleList, isTokenSample, type ComposedSample } from '../samples';
import type { AttachContext, Contribution, FusionStrategy, LossTermInput, SegmentContext, StrategyPackOptions } from './strategy';

/** Options of {@link tokenizedFusion}. */
export interface TokenizedFusionOptions {
  /** Weight of code (and marker) positions in the LM loss relative to text (default 1; 0 leaves codes untrained). */
  codeLossWeight?: number;
  /** z-loss coefficient over the trained positions (default 0 = off; Chameleon used 1e-5). */
  zLoss?: number;
  /** Std of the noise around the text rows' mean that new rows start at, relative to the text rows' std (default 1). */
  initNoise?: number;
  /**
   * Text ids standing for "no condition" (e.g. [BOS]): the unconditional prompt of classifier-free guidance. Train
   * with some captions replaced by it, or guidance has nothing meaningful to subtract.
   */
  unconditionalPrompt?: readonly number[];
  /** Keep a copy of the text rows so `restoreTextRows()` can write them back after each update (default false). */
  frozenTextRows?: boolean;
}

/** Options of {@link TokenizedFusion.generateImage}. */
export interface GenerateImageOptions {
  /** Classifier-free guidance scale (needs an unconditional path: `unconditional` or the strategy's unconditionalPrompt). */
  guidance?: number;
  /** The unconditional prompt of every row (default: the strategy's unconditionalPrompt). */
  unconditional?: ComposedSample;
  /** Sampling temperature > 0 (sampling is on when temperature or topK is set; greedy otherwise). */
  temperature?: number;
  /** Keep the k most likely codes (0 = off). */
  topK?: number;
  /** Sample (default true when temperature or topK is set). */
  doSample?: boolean;
  /** Sampler seed. */
  seed?: number;
  /** Generation budget in tokens (default the grid); smaller than the grid is an error. */
  maxNewTokens?: number;
  /** Use the KV cache (default true). */
  useCache?: boolean;
}

/** What {@link TokenizedFusion.generateImage} returns (plain JS). */
export interface GeneratedImages<Output = unknown> {
  /** Per row, the N codes in [0, codebookSize). */
  codes: number[][];
  /** Per row, the generated run in unified ids: begin marker, offset + codes, end marker. */
  tokens: number[][];
  /** Per row, the modality's detokenized output (an image). */
  outputs: Output[];
}

interface Attached {
  name: string;
  modality: Modality<any, any, any>;
  codec: DiscreteCodec<any, any>;
  backbone: CausalLM;
  /** The text vocabulary size before growth: the first code's id. */
  offset: number;
  codebookSize: number;
  textRows: { embed: tf.Tensor; head: tf.Tensor | null } | null;
}

/** Tokenized early fusion (Chameleon): image codes as tokens of a grown text vocabulary. */
export class TokenizedFusion implements FusionStrategy {
  readonly kind = 'tokenized';
  /**
   * The offset is only known once attach sees the backbone, after compose has merged pack options; compose keeps
   * this very object, so the entry written at attach is what the packer reads.
   */
  private readonly unified: Record<string, number> = {};
  readonly packOptions: StrategyPackOptions = { unifiedVocab: this.unified };
  private readonly options: TokenizedFusionOptions;
  private attached: Attached | null = null;

  constructor(options: TokenizedFusionOptions = {}) {
    const { codeLossWeight = 1, zLoss: z = 0, initNoise = 1, unconditionalPrompt } = options;
    if (!(Number.isFinite(codeLossWeight) && codeLossWeight >= 0)) {
      throw new Error(`tokenizedFusion: codeLossWeight must be a finite number >= 0 (0 leaves codes untrained), got ${codeLossWeight}`);
    }
    if (!(Number.isFinite(z) && z >= 0)) throw new Error(`tokenizedFusion: zLoss must be a finite number >= 0 (e.g. 1e-5), got ${z}`);
    if (!(Number.isFinite(initNoise) && initNoise >= 0)) throw new Error(`tokenizedFusion: initNoise must be a finite number >= 0, got ${initNoise}`);
    if (unconditionalPrompt !== undefined && (!Array.isArray(unconditionalPrompt) || unconditionalPrompt.length === 0)) {
      throw new Error('tokenizedFusion: unconditionalPrompt must be a non-empty list of text ids (e.g. [BOS])');
    }
    this.options = options;
  }

  /** The id of the first code (the text vocabulary size before growth). */
  get codeOffset(): number {
    return this.state().offset;
  }

  /** The begin-of-image marker id. */
  get beginImageId(): number {
    const s = this.state();
    return s.offset + s.codebookSize;
  }

  /** The end-of-image marker id. */
  get endImageId(): number {
    return this.beginImageId + 1;
  }

  /**
   * Every id the strategy added (codes and both markers): pass as `suppressTokens` to `model.generate` for text
   * that must not open or contain an image.
   */
  get imageTokenIds(): number[] {
    const { offset, codebookSize } = this.state();
    return Array.from({ length: codebookSize + 2 }, (_, i) => offset + i);
  }

  attach(ctx: AttachContext): void {
    if (this.attached) throw new Error(`tokenized fusion: this strategy already serves '${this.attached.name}'; make one per modality`);
    const codec = requirePath(ctx.modality, 'discrete') as DiscreteCodec<any, any>;
    const { backbone } = ctx;
    const offset = backbone.config.vocabSize;
    const codebookSize = codec.codebookSize;
    if (!Number.isInteger(codebookSize) || codebookSize < 1) {
      throw new Error(`tokenized fusion: the ${ctx.modalityName} codec's codebookSize must be a positive integer, got ${codebookSize}`);
    }
    const textRows = this.options.frozenTextRows
      ? {
          embed: tf.clone(backbone.model.embed_tokens.weight),
          head: backbone.lm_head ? tf.clone(backbone.lm_head.weight) : null,
        }
      : null;
    // New rows: the text rows' mean plus noise of (initNoise x) their std, so codes start apart from each other.
    backbone.resizeTokenEmbeddings(offset + codebookSize + 2, { noiseScale: this.options.initNoise ?? 1 });
    this.unified[ctx.modalityName] = offset;
    this.attached = { name: ctx.modalityName, modality: ctx.modality, codec, backbone, offset, codebookSize, textRows };
  }

  tokensFor(item: unknown): number {
    const { modality } = this.state();
    return modality.tokensFor(item, 'discrete') + 2;
  }

  /** The item's codes between the markers, as one `codes` run in the unified vocabulary. */
  segments(item: unknown, ctx: SegmentContext): MediaSegment[] {
    const { name, codec, codebookSize } = this.state();
    const ids = tf.tidy(() => codec.tokenize([item]));
    let codes: number[];
    try {
      codes = Array.from(ids.dataSync());
    } finally {
      ids.dispose();
    }
    const where = ctx.where ? ` (${ctx.where})` : '';
    const bad = codes.findIndex((c) => !Number.isInteger(c) || c < 0 || c >= codebookSize);
    if (bad >= 0) {
      throw new Error(
        `tokenized fusion: the ${name} tokenizer gave code ${codes[bad]} at index ${bad}${where}, outside its codebook [0, ${codebookSize}); ` +
          'codes must be integers below codebookSize: check the tokenizer (or the codebookSize it declares)',
      );
    }
    const expected = this.tokensFor(item) - 2;
    if (codes.length !== expected) {
      throw new Error(`tokenized fusion: the ${name} tokenizer gave ${codes.length} codes${where}, but tokensFor says ${expected}; they must agree`);
    }
    return [
      {
        modality: name,
        kind: 'codes',
        codes: [codebookSize, ...codes, codebookSize + 1],
        trained: (this.options.codeLossWeight ?? 1) > 0,
      },
    ];
  }

  /** Everything is in the text vocabulary: nothing to splice. */
  contribute(): Contribution {
    this.state();
    return {};
  }

  /** `codes_weight` (codeLossWeight - 1 times the code positions' share of the LM loss) and `z_loss`, when on. */
  lossTerms({ output, batch }: LossTermInput): Record<string, tf.Scalar> {
    const { offset } = this.state();
    const terms: Record<string, tf.Scalar> = {};
    const weight = this.options.codeLossWeight ?? 1;
    const { ids, mask } = batch.targets.text;
    if (weight !== 1 && weight > 0) {
      const codeMask = tf.tidy(() => tf.mul(mask, tf.cast(tf.greaterEqual(ids, offset), 'float32')) as tf.Tensor2D);
      const counts = tf.tidy(() => tf.stack([tf.sum(codeMask), tf.sum(mask)]).dataSync());
      if (counts[0]! > 0) {
        // The text loss is a mean over every trained position; this adds (weight - 1) x the code positions' share.
        terms.codes_weight = tf.tidy(() => tf.mul(causalLMLoss(output.logits, ids, codeMask), ((weight - 1) * counts[0]!) / counts[1]!) as tf.Scalar);
      }
      codeMask.dispose();
    }
    const z = this.options.zLoss ?? 0;
    if (z > 0) terms.z_loss = zLoss(output.logits, mask, z);
    return terms;
  }

  /**
   * Writes the saved text rows back into the embedding and LM head (with `frozenTextRows`): call after each
   * optimizer step to train only the code and marker rows.
   */
  restoreTextRows(): void {
    const { backbone, offset, textRows } = this.state();
    if (!textRows) throw new Error('tokenized fusion: restoreTextRows needs tokenizedFusion({ frozenTextRows: true }), which keeps the text rows');
    const embed = backbone.model.embed_tokens.weight;
    embed.assign(tf.tidy(() => tf.concat([textRows.embed, tf.slice(embed, [offset, 0], [-1, -1])], 0)));
    const head = backbone.lm_head?.weight;
    if (head && textRows.head) head.assign(tf.tidy(() => tf.concat([textRows.head!, tf.slice(head, [0, offset], [-1, -1])], 1)));
  }

  /**
   * Generates one image per prompt: appends the begin marker, samples exactly the grid's codes (only code ids
   * between the markers), closes with the end marker and detokenizes through the modality.
   */
  async generateImage(
    model: ComposedModel,
    prompts: ComposedSample | readonly ComposedSample[],
    options: GenerateImageOptions = {},
  ): Promise<GeneratedImages> {
    const { name, codec, backbone, offset, codebookSize } = this.state();
    if (model.strategies.get(name) !== this || model.llm !== backbone) {
      throw new Error(`tokenized fusion: generateImage got a model this strategy is not part of; pass the model compose() built with it`);
    }
    const rows = isSampleList(prompts) ? [...prompts] : [prompts as ComposedSample];
    const begin = offset + codebookSize;
    const numCodes = codec.latentGrid.reduce((a, b) => a * b, 1);
    let unconditional: ComposedSample[] | null = null;
    if (options.guidance !== undefined) {
      const given = options.unconditional ?? (this.options.unconditionalPrompt ? [{ text: [...this.options.unconditionalPrompt] }] : undefined);
      if (!given) {
        throw new Error(
          `tokenized fusion: guidance ${options.guidance} needs an unconditional path, but this model has none: pass ` +
            'generateImage(..., { unconditional: [{ text: [BOS] }] }) or build the strategy with tokenizedFusion({ unconditionalPrompt: [BOS] }) ' +
            '(and train with some captions dropped to it); or drop guidance',
        );
      }
      unconditional = rows.map(() => given);
    }
    // Laid out in plain JS first, so a bad prompt fails before any tensor exists.
    const condLayout = promptLayout(model, rows, begin, name);
    const uncondLayout = unconditional ? promptLayout(model, unconditional, begin, name) : null;
    const embed = (l: PromptLayout) =>
      tf.tidy(() => ({
        inputsEmbeds: backbone.model.embed_tokens.forward(tf.tensor2d(l.ids, [l.batch, l.length], 'int32')),
        paddingMask: tf.tensor2d(l.mask, [l.batch, l.length], 'float32'),
      }));
    const prompt = embed(condLayout);
    const uncond = uncondLayout ? embed(uncondLayout) : null;
    let codes: number[][];
    try {
      const generated = await generateCodes(backbone, {
        prompt,
        ...(uncond ? { unconditional: uncond } : {}),
        hooks: {
          embedCode: (ids) => backbone.model.embed_tokens.forward(tf.add(ids, tf.scalar(offset, 'int32'))),
          codeLogits: ({ logits }) => tf.slice(logits, [0, offset], [logits.shape[0]!, codebookSize]) as tf.Tensor2D,
        },
        numCodes,
        codebookSize,
        guidance: options.guidance,
        temperature: options.temperature,
        topK: options.topK,
        doSample: options.doSample,
        seed: options.seed,
        maxNewTokens: options.maxNewTokens,
        useCache: options.useCache,
      });
      codes = generated.arraySync() as number[][];
      generated.dispose();
    } finally {
      tf.dispose([prompt, uncond] as unknown as tf.TensorContainer);
    }
    const ids = tf.tensor2d(codes, [codes.length, numCodes], 'int32');
    let outputs: unknown[];
    try {
      outputs = codec.detokenize(ids);
    } finally {
      ids.dispose();
    }
    return { codes, tokens: codes.map((row) => [begin, ...row.map((c) => offset + c), begin + 1]), outputs };
  }

  dispose(): void {
    if (this.attached?.textRows) tf.dispose([this.attached.textRows.embed, this.attached.textRows.head] as tf.Tensor[]);
  }

  private state(): Attached {
    if (!this.attached) throw new Error('tokenized fusion: the strategy is not attached to a model yet; pass it to compose({ fusion })');
    return this.attached;
  }
}

interface PromptLayout {
  batch: number;
  length: number;
  ids: Int32Array;
  mask: Float32Array;
}

/** The prompts with the begin marker appended, laid out left-padded; only text-vocabulary ids are supported. */
function promptLayout(model: ComposedModel, samples: readonly ComposedSample[], begin: number, name: string): PromptLayout {
  const withMarker = samples.map((s): ComposedSample => {
    if (isTokenSample(s)) return { ...s, ids: [...s.ids, begin], ...(s.trained ? { trained: [...s.trained, false] } : {}) };
    return [...s, { text: [begin] }];
  });
  const layout = model.layout(withMarker, { generation: true });
  if (layout.sources.length > 0 || layout.positionMode !== 'sequential' || layout.prefix.some((p) => p === 1) || layout.block.some((b) => b >= 0)) {
    throw new Error(
      `tokenized fusion: generateImage (${name}) takes prompts of text and tokenized items only, with sequential positions and ` +
        'causal attention; this prompt has spliced media or another attention layout',
    );
  }
  return { batch: layout.batchSize, length: layout.length, ids: layout.inputIds, mask: Float32Array.from(layout.paddingMask) };
}

/** Tokenized early fusion (Chameleon): image codes as tokens of the grown text vocabulary, with begin/end markers. */
export function tokenizedFusion(options: TokenizedFusionOptions = {}): TokenizedFusion {
  return new TokenizedFusion(options);
}
