/**
 * ViT tower configuration (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words") with presets for the CLIP
 * (Radford et al. 2021) and SigLIP (Zhai et al. 2023) vision towers, sized as in their HF config.json files.
 *
 *   const config = clipVitL14({ imageSize: 336 });          // LLaVA-1.5's tower
 *   const tiny = tinyViT({ positions: 'rope2d' });          // for tests
 *
 * `vitConfig(input)` fills defaults (CLIP-style) and validates. The HF config.json side lives in hf-import.ts.
 */
import { ACTIVATION_NAMES } from '@chimera/core';

/** Which HF layout a tower round-trips to; null for a custom tower (exported with CLIP names). */
export type ViTFamily = 'clip' | 'siglip';

/** 'learned': one trained vector per grid cell (interpolated for other sizes); 'rope2d': rotary (row, col). */
export type ViTPositions = 'learned' | 'rope2d';

/**
 * A ViT tower's architecture (CLIP or SigLIP layout, or custom). Build one with {@link vitConfig}, a preset such as
 * {@link clipVitL14_336}, or {@link vitConfigFromHF}.
 */
export interface ViTConfig {
  /** The HF layout it round-trips to, or null for a custom tower. */
  family: ViTFamily | null;
  /** The square input size the learned positions were trained for (other sizes interpolate). */
  imageSize: number;
  /** Patch side in pixels. */
  patchSize: number;
  /** Input channels (3 for RGB). */
  channels: number;
  /** Model width D. */
  hiddenSize: number;
  /** Encoder blocks. */
  numLayers: number;
  /** Attention heads. */
  numHeads: number;
  /** Width of the MLP's hidden layer. */
  intermediateSize: number;
  /** MLP activation: CLIP 'quick_gelu', SigLIP 'gelu_tanh' (any name core's getActivation knows). */
  activation: string;
  /** Epsilon of every LayerNorm. */
  layerNormEps: number;
  /** A learned CLS token is prepended to the patches (CLIP yes, SigLIP no). */
  clsToken: boolean;
  /** A LayerNorm on the embeddings before the first block (CLIP's `pre_layrnorm`). */
  preNorm: boolean;
  /** A LayerNorm after the last block (`post_layernorm`). */
  postNorm: boolean;
  /** A bias on the patch projection (SigLIP yes, CLIP no). */
  patchBias: boolean;
  /** How positions enter: learned vectors or 2-D RoPE. */
  positions: ViTPositions;
  /** Frequency base of the 2-D RoPE (positions 'rope2d'). */
  ropeTheta: number;
  /**
   * Inputs whose sides are not multiples of the patch: false (default) is an error; true drops the bottom/right
   * remainder as PyTorch's strided conv does (SigLIP so400m: 384 px, patch 14 -> 27x27 patches, 6 px unused).
   */
  dropRemainder: boolean;
}

/** The sizes a config must state; everything else has a (CLIP-style) default. */
export type ViTConfigInput = Pick<ViTConfig, 'imageSize' | 'patchSize' | 'hiddenSize' | 'numLayers' | 'numHeads' | 'intermediateSize'> &
  Partial<ViTConfig>;

const CLIP_STYLE = {
  family: 'clip',
  channels: 3,
  activation: 'quick_gelu',
  layerNormEps: 1e-5,
  clsToken: true,
  preNorm: true,
  postNorm: true,
  patchBias: false,
  positions: 'learned',
  ropeTheta: 10000,
  dropRemainder: false,
} as const;

const SIGLIP_STYLE = {
  family: 'siglip',
  channels: 3,
  activation: 'gelu_tanh',
  layerNormEps: 1e-6,
  clsToken: false,
  preNorm: false,
  postNorm: true,
  patchBias: true,
  positions: 'learned',
  ropeTheta: 10000,
  dropRemainder: false,
} as const;

/** Fills CLIP-style defaults and validates. */
export function vitConfig(input: ViTConfigInput): ViTConfig {
  const config: ViTConfig = { ...CLIP_STYLE, ...withoutUndefined(input) };
  validateViTConfig(config);
  return config;
}

/** openai/clip-vit-base-patch16. */
export function clipVitB16(overrides: Partial<ViTConfig> = {}): ViTConfig {
  return vitConfig({ imageSize: 224, patchSize: 16, hiddenSize: 768, numLayers: 12, numHeads: 12, intermediateSize: 3072, ...overrides });
}

/** openai/clip-vit-base-patch32. */
export function clipVitB32(overrides: Partial<ViTConfig> = {}): ViTConfig {
  return clipVitB16({ patchSize: 32, ...overrides });
}

/** openai/clip-vit-large-patch14. */
export function clipVitL14(overrides: Partial<ViTConfig> = {}): ViTConfig {
  return vitConfig({ imageSize: 224, patchSize: 14, hiddenSize: 1024, numLayers: 24, numHeads: 16, intermediateSize: 4096, ...overrides });
}

/** openai/clip-vit-large-patch14-336 (LLaVA-1.5's vision tower). */
export function clipVitL14_336(overrides: Partial<ViTConfig> = {}): ViTConfig {
  return clipVitL14({ imageSize: 336, ...overrides });
}

/** google/siglip-base-patch16-224. */
export function siglipBase16(overrides: Partial<ViTConfig> = {}): ViTConfig {
  return vitConfig({ ...SIGLIP_STYLE, imageSize: 224, patchSize: 16, hiddenSize: 768, numLayers: 12, numHeads: 12, intermediateSize: 3072, ...overrides });
}

/** google/siglip-so400m-patch14-384 (many VLMs' tower); 384 is not a multiple of 14, so the remainder is dropped. */
export function siglipSo400m14(overrides: Partial<ViTConfig> = {}): ViTConfig {
  return vitConfig({ ...SIGLIP_STYLE, dropRemainder: true, imageSize: 384, patchSize: 14, hiddenSize: 1152, numLayers: 27, numHeads: 16, intermediateSize: 4304, ...overrides });
}

/** A CLIP-style tower small enough for unit tests: 16x16 input, 4x4 patches, width 16, 2 layers. */
export function tinyViT(overrides: Partial<ViTConfig> = {}): ViTConfig {
  return vitConfig({ imageSize: 16, patchSize: 4, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 32, ...overrides });
}

/** The family defaults (activation, norms, CLS, biases) without sizes: the base HF config.json values fill. */
export function familyDefaults(family: ViTFamily): Omit<ViTConfig, 'imageSize' | 'patchSize' | 'hiddenSize' | 'numLayers' | 'numHeads' | 'intermediateSize'> {
  return { ...(family === 'clip' ? CLIP_STYLE : SIGLIP_STYLE) };
}

/** Side of the trained (square) patch grid. */
export function trainedGridSize(config: ViTConfig): number {
  return Math.floor(config.imageSize / config.patchSize);
}

/**
 * Throws a message naming the field unless the config is consistent (positive sizes, heads dividing the width, a
 * known activation, ...).
 */
export function validateViTConfig(config: ViTConfig): void {
  const problems: string[] = [];
  const positiveInt = (key: keyof ViTConfig) => {
    const v = config[key];
    if (!(typeof v === 'number' && Number.isInteger(v) && v > 0)) problems.push(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
  };
  for (const key of ['imageSize', 'patchSize', 'channels', 'hiddenSize', 'numLayers', 'numHeads', 'intermediateSize'] as const) {
    positiveInt(key);
  }
  if (problems.length === 0) {
    if (config.imageSize % config.patchSize !== 0 && !config.dropRemainder) {
      problems.push(
        `imageSize (${config.imageSize}) must be a multiple of patchSize (${config.patchSize}), or set dropRemainder ` +
          'to drop the leftover pixels as a strided conv does',
      );
    }
    if (config.imageSize < config.patchSize) problems.push(`imageSize (${config.imageSize}) is smaller than patchSize (${config.patchSize})`);
    if (config.hiddenSize % config.numHeads !== 0) {
      problems.push(`hiddenSize (${config.hiddenSize}) must be divisible by numHeads (${config.numHeads})`);
    } else if (config.positions === 'rope2d' && (config.hiddenSize / config.numHeads) % 4 !== 0) {
      problems.push(
        `positions 'rope2d' needs a head dim divisible by 4 (a quarter of the channels per axis), got ` +
          `${config.hiddenSize / config.numHeads}; change hiddenSize or numHeads`,
      );
    }
  }
  if (!ACTIVATION_NAMES.includes(config.activation)) {
    problems.push(`activation '${config.activation}' is unknown; expected one of ${ACTIVATION_NAMES.join(', ')}`);
  }
  if (!(config.layerNormEps > 0)) problems.push(`layerNormEps must be > 0, got ${config.layerNormEps}`);
  if (config.positions !== 'learned' && config.positions !== 'rope2d') {
    problems.push(`positions must be 'learned' or 'rope2d', got ${JSON.stringify(config.positions)}`);
  }
  if (config.family !== null && config.family !== 'clip' && config.family !== 'siglip') {
    problems.push(`family must be 'clip', 'siglip' or null, got ${JSON.stringify(config.family)}`);
  }
  if (!(config.ropeTheta > 0)) problems.push(`ropeTheta must be > 0, got ${config.ropeTheta}`);
  if (typeof config.dropRemainder !== 'boolean') problems.push(`dropRemainder must be a boolean, got ${JSON.stringify(config.dropRemainder)}`);
  if (problems.length) throw new Error(`ViT config is invalid:\n  ${problems.join('\n  ')}`);
}

function withoutUndefined<T extends object>(input: T): T {
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as T;
}
