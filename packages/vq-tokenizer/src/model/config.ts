// VQ-VAE / VQGAN configuration in LlamaGen's terms (tokenizer/tokenizer_image/vq_model.py, the VQ of Janus).

/** Sizes of a VQModel. */
export interface VQConfig {
  /** Image channels (default 3). */
  inChannels: number;
  /** Base width `ch` (default 128). */
  channels: number;
  /** Width multiplier per resolution level; every level but the last halves the image (default [1, 1, 2, 2, 4]). */
  channelMult: readonly number[];
  /** Res blocks per encoder level (the decoder has one more) (default 2). */
  numResBlocks: number;
  /** Width of the encoder output / decoder input (default 256). */
  zChannels: number;
  /** Codes in the codebook (default 16384). */
  codebookSize: number;
  /** Width of one code (default 8). */
  codebookDim: number;
  /** l2-normalise latents and codes before matching (default true, as LlamaGen/Janus). */
  codebookL2Norm: boolean;
  /** Commitment weight beta (default 0.25). */
  beta: number;
  /** Weight of the entropy loss (default 0: off). */
  entropyLossRatio: number;
  /** Temperature of the entropy loss's soft assignment (default 0.01). */
  entropyTemperature: number;
  /** Attention blocks at the lowest resolution (in the last level and the middle) (default true). */
  attention: boolean;
  /** GroupNorm groups (default 32); must divide every width. */
  normGroups: number;
  /** GroupNorm epsilon (default 1e-6). */
  normEps: number;
}

/** LlamaGen's defaults (the VQ-16 sizes). */
export const DEFAULT_VQ_CONFIG: Readonly<VQConfig> = {
  inChannels: 3,
  channels: 128,
  channelMult: [1, 1, 2, 2, 4],
  numResBlocks: 2,
  zChannels: 256,
  codebookSize: 16384,
  codebookDim: 8,
  codebookL2Norm: true,
  beta: 0.25,
  entropyLossRatio: 0,
  entropyTemperature: 0.01,
  attention: true,
  normGroups: 32,
  normEps: 1e-6,
};

/** Janus's / LlamaGen's VQ-16: 16x downsampling, 16384 codes of width 8 (576 codes for a 384-pixel image). */
export const VQ16_CONFIG: Readonly<VQConfig> = { ...DEFAULT_VQ_CONFIG };

/**
 * A small tokenizer for the 32x32 shapes generation set: 4x downsampling (an 8x8 grid of 64 codes), 512 codes of
 * width 8. (8x downsampling, a 4x4 grid, lost the colours in 600 steps: the judge named 50% of its reconstructions,
 * against 99.4% at 4x; examples/shapes-vq's README has both runs.)
 */
export const SHAPES_VQ_CONFIG: Readonly<VQConfig> = {
  ...DEFAULT_VQ_CONFIG,
  channels: 32,
  channelMult: [1, 2, 2],
  numResBlocks: 1,
  zChannels: 64,
  codebookSize: 512,
  normGroups: 8,
};

/** Fills defaults and checks the sizes; throws naming every problem. */
export function resolveVQConfig(config: Partial<VQConfig> = {}): VQConfig {
  const c: VQConfig = { ...DEFAULT_VQ_CONFIG, ...config, channelMult: [...(config.channelMult ?? DEFAULT_VQ_CONFIG.channelMult)] };
  const problems: string[] = [];
  const positiveInt = (name: keyof VQConfig) => {
    const v = c[name];
    if (!(Number.isInteger(v) && (v as number) >= 1)) problems.push(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
  };
  (['inChannels', 'channels', 'numResBlocks', 'zChannels', 'codebookSize', 'codebookDim', 'normGroups'] as const).forEach(positiveInt);
  if (c.channelMult.length === 0 || !c.channelMult.every((m) => Number.isInteger(m) && m >= 1)) {
    problems.push(`channelMult must be a non-empty list of positive integers, got ${JSON.stringify(c.channelMult)}`);
  }
  if (problems.length === 0) {
    const widths = [c.channels, ...c.channelMult.map((m) => m * c.channels)];
    const bad = widths.filter((w) => w % c.normGroups !== 0);
    if (bad.length) problems.push(`normGroups ${c.normGroups} must divide every block width, but not ${[...new Set(bad)].join(', ')}; pick a divisor of ${c.channels}`);
  }
  if (!(c.beta >= 0)) problems.push(`beta must be >= 0, got ${c.beta}`);
  if (!(c.entropyLossRatio >= 0)) problems.push(`entropyLossRatio must be >= 0, got ${c.entropyLossRatio}`);
  if (!(c.entropyTemperature > 0)) problems.push(`entropyTemperature must be > 0, got ${c.entropyTemperature}`);
  if (!(c.normEps > 0)) problems.push(`normEps must be > 0, got ${c.normEps}`);
  if (problems.length) throw new Error(`VQ config: ${problems.join('; ')}`);
  return c;
}

/** The image side must be a multiple of this: 2^(levels - 1). */
export function downsampleFactor(config: Pick<VQConfig, 'channelMult'>): number {
  return 2 ** (config.channelMult.length - 1);
}
