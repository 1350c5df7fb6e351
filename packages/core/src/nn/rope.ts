/**
 * Rotary position embeddings (Su et al. 2021, "RoFormer"), in HF Llama's rotate-half layout, with one
 * mechanism for 1-D RoPE, 2-D RoPE for image grids and Qwen2-VL's multimodal M-RoPE (Wang et al. 2024), plus
 * the 'linear' (position interpolation, Chen et al. 2023) and 'llama3' frequency scalings.
 *
 * Frequency layout. A head of `headDim` channels has headDim/2 rotating pairs; pair j rotates channels j and
 * j + headDim/2 by the angle position * invFreq[j] (rotate-half: the cos/sin tables repeat their first half).
 * With several position axes (positions [A, B, T]), `sections` splits the pairs into A consecutive blocks and
 * axis k drives block k, exactly as M-RoPE does (sections [16, 24, 24] for headDim 128: t, h, w).
 * `ladder` says which frequencies the blocks get:
 * - 'shared' (default): one ladder theta^(-2j/headDim) over all pairs, cut into blocks (Qwen2-VL M-RoPE), so
 *   the first axis gets the fastest frequencies;
 * - 'per-axis': every block gets its own full ladder theta^(-2i/(2*sections[k])), i < sections[k], so each axis
 *   spans fast to slow. 2-D RoPE for vision is two axes (row, col), sections [headDim/4, headDim/4] and
 *   ladder 'per-axis': this reproduces Qwen2-VL's vision-tower 2-D RoPE (row pairs first, then column pairs).
 */
import * as tf from '@tensorflow/tfjs';

/** Position interpolation: every frequency divided by `factor`. */
export interface LinearRopeScaling {
  /** Discriminator. */
  type: 'linear';
  /** Divisor of every frequency (the context extension factor). */
  factor: number;
}

/** HF's rope_type 'llama3': slow frequencies divided by `factor`, fast ones kept, a smooth blend between. */
export interface Llama3RopeScaling {
  /** Discriminator. */
  type: 'llama3';
  /** Divisor of the slow (long-wavelength) frequencies. */
  factor: number;
  /** Wavelengths above originalMaxPositionEmbeddings / lowFreqFactor are fully scaled. */
  lowFreqFactor: number;
  /** Wavelengths below originalMaxPositionEmbeddings / highFreqFactor are kept. */
  highFreqFactor: number;
  /** Context length the model was pre-trained with. */
  originalMaxPositionEmbeddings: number;
}

/** A RoPE frequency scaling, as HF configs' `rope_scaling` ('linear' or 'llama3'). */
export type RopeScaling = LinearRopeScaling | Llama3RopeScaling;

/**
 * How sections share frequencies: 'shared' cuts one ladder into blocks (M-RoPE), 'per-axis' gives every block its own
 * full ladder (2-D vision RoPE).
 */
export type RopeLadder = 'shared' | 'per-axis';

/** Construction options of {@link RotaryEmbedding}. */
export interface RotaryEmbeddingOptions {
  /** Channels rotated per head (even). Usually the attention head dim. */
  headDim: number;
  /** Base of the frequency ladder (default 10000; Llama 3 uses 500000). */
  theta?: number;
  /** Rotating pairs per position axis, summing to headDim/2 (M-RoPE / 2-D RoPE). Omit for 1-D RoPE. */
  sections?: number[];
  /** Which frequencies each section gets (see the file comment). Default 'shared'. */
  ladder?: RopeLadder;
  /** Frequency scaling for longer contexts (default none). */
  scaling?: RopeScaling;
}

/** cos and sin tables [B, T, headDim] for `applyRotary` (a type alias so tf.tidy can return it). */
export type RotaryTables = {
  /** cos table [B, T, headDim]. */
  cos: tf.Tensor;
  /** sin table [B, T, headDim]. */
  sin: tf.Tensor;
};

/** The inverse frequency of every rotating pair (headDim/2 values), scaling included. */
export function ropeInverseFrequencies(options: RotaryEmbeddingOptions): Float32Array {
  const { headDim } = options;
  const theta = options.theta ?? 10000;
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) {
    throw new Error(`RotaryEmbedding: headDim must be a positive even integer, got ${headDim}`);
  }
  const half = headDim / 2;
  const sections = options.sections ?? [half];
  checkSections(sections, headDim);
  const ladder = options.ladder ?? 'shared';
  const out = new Float32Array(half);
  let start = 0;
  for (const size of sections) {
    for (let i = 0; i < size; i++) {
      // 'shared': the rung is the pair's global index; 'per-axis': its index inside the section.
      const exponent = ladder === 'shared' ? (2 * (start + i)) / headDim : (2 * i) / (2 * size);
      out[start + i] = scaleFrequency(Math.pow(theta, -exponent), options.scaling);
    }
    start += size;
  }
  return out;
}

function scaleFrequency(invFreq: number, scaling: RopeScaling | undefined): number {
  if (!scaling) return invFreq;
  if (!(scaling.factor > 0)) throw new Error(`RoPE scaling: factor must be > 0, got ${scaling.factor}`);
  if (scaling.type === 'linear') return invFreq / scaling.factor;
  if (scaling.type === 'llama3') {
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: context } = scaling;
    if (!(highFreqFactor > lowFreqFactor)) {
      throw new Error(`RoPE llama3 scaling: highFreqFactor (${highFreqFactor}) must exceed lowFreqFactor (${lowFreqFactor})`);
    }
    const wavelength = (2 * Math.PI) / invFreq;
    // Wavelengths longer than the original context / lowFreqFactor are interpolated fully; shorter than
    // context / highFreqFactor are kept; between, a linear blend in context / wavelength.
    if (wavelength > context / lowFreqFactor) return invFreq / factor;
    if (wavelength < context / highFreqFactor) return invFreq;
    const smooth = (context / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return (1 - smooth) * (invFreq / factor) + smooth * invFreq;
  }
  throw new Error(
    `RoPE scaling: unknown type '${(scaling as { type: string }).type}'; supported: 'linear', 'llama3'`,
  );
}

/**
 * Reads an HF config's `rope_scaling` ({ rope_type | type, factor, low_freq_factor, ... }) into a RopeScaling;
 * undefined for none/'default'. Unsupported types are an error rather than silently unscaled positions.
 */
export function ropeScalingFromConfig(raw: Record<string, unknown> | null | undefined): RopeScaling | undefined {
  if (!raw) return undefined;
  const type = (raw.rope_type ?? raw.type) as string | undefined;
  if (type === undefined || type === 'default') return undefined;
  const num = (key: string): number => {
    const v = raw[key];
    if (typeof v !== 'number') throw new Error(`rope_scaling (${type}): expected a number for '${key}', got ${JSON.stringify(v)}`);
    return v;
  };
  if (type === 'linear') return { type, factor: num('factor') };
  if (type === 'llama3') {
    return {
      type,
      factor: num('factor'),
      lowFreqFactor: num('low_freq_factor'),
      highFreqFactor: num('high_freq_factor'),
      originalMaxPositionEmbeddings: num('original_max_position_embeddings'),
    };
  }
  throw new Error(`rope_scaling: rope_type '${type}' is not supported (supported: default, linear, llama3)`);
}

function checkSections(sections: number[], headDim: number): void {
  const total = sections.reduce((a, b) => a + b, 0);
  if (sections.length === 0 || sections.some((s) => !Number.isInteger(s) || s <= 0) || total !== headDim / 2) {
    throw new Error(
      `RotaryEmbedding: sections must be positive integers summing to headDim/2 = ${headDim / 2}, ` +
        `got [${sections.join(', ')}] (sum ${total}); e.g. [16, 24, 24] for headDim 128`,
    );
  }
}

/** Computes cos/sin tables from positions. Holds no tensors, so it needs no dispose. */
export class RotaryEmbedding {
  /** Channels rotated per head. */
  readonly headDim: number;
  /** Base of the frequency ladder. */
  readonly theta: number;
  /** Pairs per axis; [headDim/2] for 1-D RoPE. */
  readonly sections: readonly number[];
  /** How sections share frequencies. */
  readonly ladder: RopeLadder;
  /** Frequency scaling, if any. */
  readonly scaling: RopeScaling | undefined;
  /** Per rotating pair (headDim/2). */
  readonly inverseFrequencies: Float32Array;

  constructor(options: RotaryEmbeddingOptions) {
    this.inverseFrequencies = ropeInverseFrequencies(options);
    this.headDim = options.headDim;
    this.theta = options.theta ?? 10000;
    this.sections = options.sections ? [...options.sections] : [options.headDim / 2];
    this.ladder = options.ladder ?? 'shared';
    this.scaling = options.scaling;
  }

  /** Number of position axes this embedding expects (1 for plain RoPE). */
  get numAxes(): number {
    return this.sections.length;
  }

  /**
   * positions: int32 (or float32) [B, T] for 1-D RoPE, or [A, B, T] with one row per section axis. Positions
   * [B, T] given to a multi-axis embedding drive every axis (text tokens in M-RoPE). Returns cos/sin
   * [B, T, headDim].
   */
  forward(positions: tf.Tensor): RotaryTables {
    return tf.tidy(() => {
      const pos = positions.dtype === 'float32' ? positions : tf.cast(positions, 'float32');
      let angles: tf.Tensor; // [B, T, headDim/2]
      if (pos.rank === 2) {
        angles = tf.mul(tf.expandDims(pos, -1), tf.tensor1d(this.inverseFrequencies));
      } else if (pos.rank === 3) {
        const numAxes = pos.shape[0];
        if (numAxes !== this.sections.length) {
          throw new Error(
            `RotaryEmbedding: positions [${pos.shape}] have ${numAxes} axes but sections [${this.sections.join(', ')}] ` +
              `expect ${this.sections.length}; pass positions [${this.sections.length}, B, T] or [B, T]`,
          );
        }
        const perAxis = tf.unstack(pos); // A x [B, T]
        let start = 0;
        const blocks = this.sections.map((size, axis) => {
          const freqs = tf.tensor1d(this.inverseFrequencies.subarray(start, start + size));
          start += size;
          return tf.mul(tf.expandDims(perAxis[axis]!, -1), freqs); // [B, T, size]
        });
        angles = blocks.length === 1 ? blocks[0]! : tf.concat(blocks, -1);
      } else {
        throw new Error(`RotaryEmbedding: positions must be [B, T] or [A, B, T], got shape [${pos.shape}]`);
      }
      const full = tf.concat([angles, angles], -1); // rotate-half layout: pair j at channels j and j + half
      return { cos: tf.cos(full), sin: tf.sin(full) };
    });
  }
}

/** Positions offset, offset+1, ... for every batch row: int32 [batch, length] (decoding after a cache). */
export function sequentialPositions(batch: number, length: number, offset = 0): tf.Tensor2D {
  return tf.tidy(() => tf.tile(tf.expandDims(tf.range(offset, offset + length, 1, 'int32'), 0), [batch, 1]) as tf.Tensor2D);
}

/** [x1, x2] -> [-x2, x1] over the last dimension. */
export function rotateHalf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [x1, x2] = tf.split(x, 2, -1);
    return tf.concat([tf.neg(x2!), x1!], -1);
  });
}

/**
 * Rotates x [B, H, T, Dh] by the tables cos/sin [B, T, R] (or [T, R]), R <= Dh even: x*cos + rotateHalf(x)*sin
 * on the first R channels; the rest pass through (partial rotary, as in GPT-NeoX / Phi).
 */
export function applyRotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    if (x.rank !== 4) throw new Error(`applyRotary: x must be [B, H, T, Dh], got shape [${x.shape}]`);
    const [batch, , length, headDim] = x.shape as [number, number, number, number];
    const rotated = cos.shape[cos.rank - 1]!;
    const tableOk =
      (cos.rank === 3 || cos.rank === 2) &&
      sameShape(cos.shape, sin.shape) &&
      cos.shape[cos.rank - 2] === length &&
      (cos.rank === 2 || cos.shape[0] === batch || cos.shape[0] === 1) &&
      rotated % 2 === 0 &&
      rotated <= headDim;
    if (!tableOk) {
      throw new Error(
        `applyRotary: cos/sin must be [B, T, R] or [T, R] with B = ${batch}, T = ${length}, even R <= ${headDim}; ` +
          `got cos [${cos.shape}], sin [${sin.shape}]. Compute them from the positions of these ${length} tokens.`,
      );
    }
    const c = cos.rank === 3 ? tf.expandDims(cos, 1) : cos; // [B, 1, T, R]: shared by every head
    const s = sin.rank === 3 ? tf.expandDims(sin, 1) : sin;
    const head = rotated === headDim ? x : tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, rotated]);
    const out = tf.add(tf.mul(head, c), tf.mul(rotateHalf(head), s));
    if (rotated === headDim) return out;
    return tf.concat([out, tf.slice(x, [0, 0, 0, rotated], [-1, -1, -1, -1])], -1);
  });
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
