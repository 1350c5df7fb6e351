/**
 * Whisper encoder configuration (Radford et al. 2022, "Robust Speech Recognition via Large-Scale Weak
 * Supervision"), with presets sized as HF's openai/whisper-{tiny,base,small} config.json files (the encoder
 * half: d_model, encoder_layers, encoder_attention_heads, encoder_ffn_dim, num_mel_bins, max_source_positions).
 *
 *   const encoder = new WhisperEncoder(whisperTiny());
 *   const test = new WhisperEncoder(tinyWhisperEncoder());     // 8 mel bins, width 16, 2 layers: for unit tests
 *
 * The HF config.json side lives in hf-import.ts.
 */
import { ACTIVATION_NAMES } from '@chimera/core';

/**
 * A Whisper encoder's architecture, with HF WhisperConfig's encoder fields under camelCase names. Build one with
 * {@link whisperEncoderConfig}, a preset such as {@link whisperTiny}, or {@link whisperEncoderConfigFromHF}.
 */
export interface WhisperEncoderConfig {
  /** Log-mel bins of the input features (HF num_mel_bins: 80, or 128 for large-v3). */
  numMelBins: number;
  /** Model width (HF d_model). */
  dModel: number;
  /** Transformer blocks (HF encoder_layers). */
  numLayers: number;
  /** Attention heads (HF encoder_attention_heads). */
  numHeads: number;
  /** Width of the MLP's hidden layer (HF encoder_ffn_dim). */
  ffnDim: number;
  /**
   * Rows of the sinusoidal position table (HF max_source_positions, 1500 = 30 s after conv2's stride 2). Inputs
   * of up to 2 * maxSourcePositions mel frames are accepted.
   */
  maxSourcePositions: number;
  /** MLP and conv activation (HF activation_function; Whisper 'gelu', the exact erf form). */
  activation: string;
  /** LayerNorm epsilon (PyTorch's default 1e-5 in every Whisper LayerNorm). */
  layerNormEps: number;
}

/** The sizes a config must state; the rest have Whisper's defaults. */
export type WhisperEncoderConfigInput = Pick<WhisperEncoderConfig, 'dModel' | 'numLayers' | 'numHeads'> & Partial<WhisperEncoderConfig>;

const WHISPER_DEFAULTS = {
  numMelBins: 80,
  maxSourcePositions: 1500,
  activation: 'gelu',
  layerNormEps: 1e-5,
} as const;

/** Fills Whisper's defaults (80 mels, 1500 positions, GELU, ffnDim = 4 * dModel) and validates. */
export function whisperEncoderConfig(input: WhisperEncoderConfigInput): WhisperEncoderConfig {
  const given = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as WhisperEncoderConfigInput;
  const config: WhisperEncoderConfig = { ...WHISPER_DEFAULTS, ffnDim: 4 * input.dModel, ...given };
  validateWhisperEncoderConfig(config);
  return config;
}

/** openai/whisper-tiny: d_model 384, 4 layers, 6 heads. */
export function whisperTiny(overrides: Partial<WhisperEncoderConfig> = {}): WhisperEncoderConfig {
  return whisperEncoderConfig({ dModel: 384, numLayers: 4, numHeads: 6, ...overrides });
}

/** openai/whisper-base: d_model 512, 6 layers, 8 heads. */
export function whisperBase(overrides: Partial<WhisperEncoderConfig> = {}): WhisperEncoderConfig {
  return whisperEncoderConfig({ dModel: 512, numLayers: 6, numHeads: 8, ...overrides });
}

/** openai/whisper-small: d_model 768, 12 layers, 12 heads. */
export function whisperSmall(overrides: Partial<WhisperEncoderConfig> = {}): WhisperEncoderConfig {
  return whisperEncoderConfig({ dModel: 768, numLayers: 12, numHeads: 12, ...overrides });
}

/** A Whisper-shaped encoder small enough for unit tests: 8 mel bins, width 16, 2 layers, 2 heads, 64 positions. */
export function tinyWhisperEncoder(overrides: Partial<WhisperEncoderConfig> = {}): WhisperEncoderConfig {
  return whisperEncoderConfig({ numMelBins: 8, dModel: 16, numLayers: 2, numHeads: 2, ffnDim: 32, maxSourcePositions: 64, ...overrides });
}

/** Mel frames the encoder accepts at most: conv2's stride 2 maps them onto the position table. */
export function maxInputFrames(config: WhisperEncoderConfig): number {
  return 2 * config.maxSourcePositions;
}

/** Positions conv2 (k 3, stride 2, pad 1) makes from `frames` mel frames: ceil(frames / 2). */
export function encoderPositions(frames: number): number {
  return Math.floor((frames - 1) / 2) + 1;
}

/**
 * Throws a message naming the field unless the config is consistent (positive sizes, heads dividing the width, a
 * known activation, ...).
 */
export function validateWhisperEncoderConfig(config: WhisperEncoderConfig): void {
  const problems: string[] = [];
  for (const key of ['numMelBins', 'dModel', 'numLayers', 'numHeads', 'ffnDim', 'maxSourcePositions'] as const) {
    const v = config[key];
    if (!(typeof v === 'number' && Number.isInteger(v) && v > 0)) problems.push(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  if (problems.length === 0) {
    if (config.dModel % config.numHeads !== 0) problems.push(`dModel (${config.dModel}) must be divisible by numHeads (${config.numHeads})`);
    // The sinusoid formula divides by (dModel / 2 - 1).
    if (config.dModel % 2 !== 0 || config.dModel < 4) problems.push(`dModel must be even and at least 4 (sin and cos halves), got ${config.dModel}`);
  }
  if (!ACTIVATION_NAMES.includes(config.activation)) {
    problems.push(`activation '${config.activation}' is unknown; expected one of ${ACTIVATION_NAMES.join(', ')}`);
  }
  if (!(config.layerNormEps > 0)) problems.push(`layerNormEps must be > 0, got ${config.layerNormEps}`);
  if (problems.length) throw new Error(`Whisper encoder config is invalid:\n  ${problems.join('\n  ')}`);
}
