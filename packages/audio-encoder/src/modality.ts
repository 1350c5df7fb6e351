/**
 * The audio modality plugin: a core `Modality` (continuous in) over clips, for both fusion families.
 * - Early fusion (Audio Flamingo 3, Goel et al. 2025; Qwen-Audio, Chu et al. 2023): the Whisper encoder's tokens,
 *   usually 2x average-pooled (`pool: 2`), spliced at `<audio>` placeholders.
 * - Cross-attention (Audio Flamingo, Kong et al. 2024): sliding windows (`windows`, default off; Audio Flamingo's
 *   are AUDIO_FLAMINGO_WINDOWS), each encoded, optionally a small transformer over all windows' tokens
 *   (`windowEncoder`), then a Perceiver and gated cross-attention in @chimera/fusion.
 *
 * `prepare` accepts log-mel features ({ features, frames, melBins }, frames x bins, e.g. from this package's
 * frontend) or raw PCM ({ pcm, sampleRate }, turned into log-mel by the `frontend` option) and returns a
 * PreparedAudio: plain JS (no tensors to dispose) holding the features and the window plan. `tokensFor` derives the
 * count from the frame count and the windowing with the rules `encode` runs (per window: ceil(valid / 2) positions
 * after conv2, then floor(/ pool)), so placeholder expansion and features agree by construction. `gridFor` gives
 * {frames: tokens, rows: 1, cols: 1}: audio tokens are a 1-D time sequence, one step per token on M-RoPE's
 * temporal axis.
 *
 * Trainable parts are one ModalityModule with role names `encoder` (the WhisperEncoder) and `window_encoder` (when
 * given), so a composite registering the plugin as `audio` exposes `audio.encoder.*` to freezing.
 */
import * as tf from '@tensorflow/tfjs';
import {
  AvgPool1d,
  ModalityModule,
  type ContinuousInput,
  type EncodeOptions,
  type EncodedFeatures,
  type MediaGrid,
  type Modality,
  type ModalityPath,
} from '@chimera/core';
import { encoderPositions, maxInputFrames } from './encoder/config';
import { WhisperEncoder, type EncoderTap } from './encoder/encoder';
import { WindowEncoder, type WindowEncoderOptions } from './encoder/window-encoder';
import { loadAudio, type LoadAudioOptions } from './audio/pcm';
import type { AudioClip } from './audio/types';
import { whisperLogMelFrames } from './frontend/log-mel';
import { FRAMES_PER_SECOND, planWindows, validateWindows, type WindowOptions, type WindowPlan } from './windows';

/** Log-mel features of one clip: [frames, melBins] row-major (frames at 100 per second). */
export interface LogMelInput {
  /** [frames, melBins] row-major. */
  features: Float32Array;
  /** Frames (100 per second). */
  frames: number;
  /** Mel bins (the encoder's numMelBins). */
  melBins: number;
}

/** Mono PCM samples in [-1, 1] at `sampleRate` Hz. */
export interface PcmInput {
  /** Samples in [-1, 1]. */
  pcm: Float32Array;
  /** Samples per second (Hz). */
  sampleRate: number;
}

/**
 * What `prepare` takes: log-mel features, raw PCM ({ pcm, sampleRate } or an AudioClip { samples, sampleRate }), or
 * WAV bytes / a WAV file path (decoded, mixed down and resampled to 16 kHz by `loadAudio`).
 */
export type AudioInput = LogMelInput | PcmInput | AudioClip | Uint8Array | string;

/** Turns PCM into log-mel features with the encoder's bin count (e.g. this package's Whisper frontend). */
export type AudioFrontend = (pcm: Float32Array, sampleRate: number, melBins: number) => LogMelInput;

/** Options of {@link audioModality}. */
export interface AudioModalityOptions {
  /** Modality name and parameter prefix (default 'audio'). */
  name?: string;
  /** The Whisper encoder (registered as the modality's `encoder`). */
  encoder: WhisperEncoder;
  /**
   * Sliding windows in mel frames (e.g. AUDIO_FLAMINGO_WINDOWS), or false/omitted for one pass over the whole clip
   * (up to the encoder's 2 * maxSourcePositions frames).
   */
  windows?: WindowOptions | false;
  /** Average-pool the encoder output over time by this factor (default 1; 2 = Audio Flamingo 3). */
  pool?: number;
  /** Encoder hidden_states indices (see WhisperEncoder); several are concatenated along features. Default -1. */
  layers?: EncoderTap | readonly EncoderTap[];
  /** A small transformer over all windows' tokens of a clip (role `window_encoder`): a module or its options. */
  windowEncoder?: WindowEncoder | Omit<WindowEncoderOptions, 'dim'>;
  /** PCM -> log-mel (default `whisperLogMelFrames`: Whisper's frontend at the clip's own length, no 30 s padding). */
  frontend?: AudioFrontend;
  /** WAV decoding and PCM checks (sample-rate and channel caps, memory budget) for byte, path and PCM input. */
  input?: LoadAudioOptions;
}

/** What `prepare` returns. */
export interface PreparedAudio {
  /** [frames, melBins] row-major log-mel features. */
  readonly features: Float32Array;
  /** Frames T (100 per second). */
  readonly frames: number;
  /** Mel bins. */
  readonly melBins: number;
  /** frames / 100. */
  readonly seconds: number;
  /** The window plan, or null when the clip is encoded in one pass. */
  readonly windows: WindowPlan | null;
}

/**
 * The audio modality plugin that {@link audioModality} builds: a Modality with the continuous-in path, plus its
 * encoder, windows and pooling.
 */
export type AudioModality = Modality<AudioInput, PreparedAudio> & {
  /** Encodes prepared clips into features [tokens, featureDim] per clip. */
  readonly continuousIn: ContinuousInput<PreparedAudio>;
  /** The trainable parts by role (`encoder`, `window_encoder`). */
  readonly module: ModalityModule;
  /** The Whisper encoder. */
  readonly encoder: WhisperEncoder;
  /** The window transformer, or null. */
  readonly windowEncoder: WindowEncoder | null;
  /** The sliding windows, or null for one pass over the clip. */
  readonly windows: WindowOptions | null;
  /** Time pooling factor of the encoder output. */
  readonly pool: number;
  /** Feature width: dModel times the number of tapped layers. */
  readonly featureDim: number;
  /** Like `prepare`, for a list. */
  prepareAll(raws: readonly AudioInput[]): PreparedAudio[];
  /** Tokens a clip of `frames` mel frames occupies (what tokensFor gives its PreparedAudio). */
  tokensForFrames(frames: number): number;
};

function checkPath(path: ModalityPath | undefined, name: string): void {
  if (path !== undefined && path !== 'continuousIn') {
    throw new Error(`modality '${name}' only has the continuousIn path (encode); got path '${path}'`);
  }
}

/** Builds the audio modality plugin (see the file comment). */
export function audioModality(options: AudioModalityOptions): AudioModality {
  const name = options.name ?? 'audio';
  const what = `audioModality('${name}')`;
  const encoder = options.encoder;
  if (!(encoder instanceof WhisperEncoder)) {
    throw new Error(`${what}: 'encoder' must be a WhisperEncoder, e.g. new WhisperEncoder(whisperTiny())`);
  }
  const config = encoder.config;
  const melBins = config.numMelBins;
  const pool = options.pool ?? 1;
  if (!Number.isInteger(pool) || pool < 1) throw new Error(`${what}: pool must be an integer >= 1 (2 = Audio Flamingo 3), got ${pool}`);
  const layerList = options.layers === undefined ? [-1] : Array.isArray(options.layers) ? [...(options.layers as number[])] : [options.layers as number];
  if (layerList.length === 0) throw new Error(`${what}: layers must name at least one encoder layer (e.g. -1)`);
  layerList.forEach((l) => encoder.resolveTap(l));
  const windows = options.windows ? validateWindows(options.windows) : null;
  if (windows && windows.window > maxInputFrames(config)) {
    throw new Error(
      `${what}: windows of ${windows.window} frames are longer than the encoder takes (${maxInputFrames(config)} frames, ` +
        `2 x ${config.maxSourcePositions} positions); use shorter windows`,
    );
  }
  const featureDim = config.dModel * layerList.length;
  let windowEncoder: WindowEncoder | null = null;
  if (options.windowEncoder instanceof WindowEncoder) {
    windowEncoder = options.windowEncoder;
  } else if (options.windowEncoder) {
    windowEncoder = new WindowEncoder({ maxWindows: windows?.maxWindows ?? 1, ...options.windowEncoder, dim: featureDim });
  }
  if (windowEncoder && windows && windowEncoder.maxWindows < windows.maxWindows) {
    throw new Error(
      `${what}: the window encoder has embeddings for ${windowEncoder.maxWindows} windows but the windows allow up to ` +
        `${windows.maxWindows}; build it with maxWindows >= ${windows.maxWindows}`,
    );
  }
  if (windowEncoder && windowEncoder.dim !== featureDim) {
    throw new Error(`${what}: the window encoder is ${windowEncoder.dim} wide but the features are ${featureDim} (dModel x layers)`);
  }

  const pooler = new AvgPool1d(Math.max(pool, 1));
  const windowTokens = (valid: number): number => Math.floor(encoderPositions(valid) / pool);
  const tokensForFrames = (frames: number): number => {
    if (windows) return planWindows(frames, windows).lengths.reduce((sum, n) => sum + windowTokens(n), 0);
    if (!Number.isInteger(frames) || frames < 1 || frames > maxInputFrames(config)) checkFrames(frames);
    return windowTokens(frames);
  };

  const checkFrames = (frames: number): void => {
    if (!Number.isInteger(frames) || frames < 1) {
      throw new Error(`${what}: a clip needs at least one mel frame, got ${frames}; check that the audio is not empty`);
    }
    if (!windows && frames > maxInputFrames(config)) {
      const max = maxInputFrames(config);
      throw new Error(
        `${what}: the clip has ${frames} mel frames (${frames / FRAMES_PER_SECOND} s) but the encoder's ` +
          `${config.maxSourcePositions} positions take at most ${max} (${max / FRAMES_PER_SECOND} s); trim it or pass ` +
          'windows (e.g. AUDIO_FLAMINGO_WINDOWS) to encode it in sliding windows',
      );
    }
  };

  const prepare = (raw: AudioInput): PreparedAudio => {
    let input: LogMelInput;
    const frontend = options.frontend ?? whisperLogMelFrames;
    const fromClip = (clip: AudioClip): LogMelInput => {
      const checked = loadAudio(clip, { ...options.input, sampleRate: clip.sampleRate }); // NaN/Inf, rate and length checks
      return frontend(checked.samples, checked.sampleRate, melBins);
    };
    if (typeof raw === 'string' || raw instanceof Uint8Array) {
      const clip = loadAudio(raw, options.input);
      input = frontend(clip.samples, clip.sampleRate, melBins);
    } else if (raw && typeof raw === 'object' && 'pcm' in raw) {
      input = fromClip({ samples: raw.pcm, sampleRate: raw.sampleRate });
    } else if (raw && typeof raw === 'object' && 'samples' in raw) {
      input = fromClip(raw);
    } else if (raw && typeof raw === 'object' && 'features' in raw) {
      input = raw;
    } else {
      throw new Error(
        `${what}: expected log-mel features { features, frames, melBins }, PCM { pcm, sampleRate }, WAV bytes or a WAV path, got ${describe(raw)}`,
      );
    }
    const { features, frames } = input;
    if (!(features instanceof Float32Array)) throw new Error(`${what}: log-mel features must be a Float32Array [frames * melBins], got ${describe(features)}`);
    if (input.melBins !== melBins) {
      throw new Error(`${what}: the features have ${input.melBins} mel bins but the encoder takes ${melBins}; compute ${melBins}-bin log-mel features`);
    }
    checkFrames(frames);
    if (features.length !== frames * melBins) {
      throw new Error(`${what}: ${frames} frames of ${melBins} mel bins need ${frames * melBins} values, got ${features.length}`);
    }
    for (let i = 0; i < features.length; i++) {
      if (!Number.isFinite(features[i]!)) {
        throw new Error(`${what}: log-mel value ${i} (frame ${Math.floor(i / melBins)}) is ${features[i]}; the audio has NaN/Inf samples or the features are corrupt`);
      }
    }
    const plan = windows ? planWindows(frames, windows) : null;
    const item: PreparedAudio = { features, frames, melBins, seconds: frames / FRAMES_PER_SECOND, windows: plan };
    if (tokensForFrames(frames) === 0) {
      throw new Error(`${what}: a clip of ${frames} mel frame(s) gives no tokens with pool ${pool}; give at least ${2 * pool - 1} frames`);
    }
    return item;
  };

  const checkItem = (item: PreparedAudio): void => {
    if (!item || !(item.features instanceof Float32Array) || item.features.length !== item.frames * item.melBins) {
      throw new Error(`${what}: expected a PreparedAudio from this plugin's prepare(), got ${describe(item)}`);
    }
    if (item.melBins !== melBins) throw new Error(`${what}: the clip was prepared with ${item.melBins} mel bins, the encoder takes ${melBins}; prepare it with this plugin`);
    if (Boolean(item.windows) !== Boolean(windows) || (windows && item.windows!.window !== windows.window)) {
      throw new Error(`${what}: the clip was prepared with other window settings; prepare it with this plugin`);
    }
  };

  const tokensFor = (item: PreparedAudio, path?: ModalityPath): number => {
    checkPath(path, name);
    checkItem(item);
    return item.windows ? item.windows.lengths.reduce((sum, n) => sum + windowTokens(n), 0) : windowTokens(item.frames);
  };

  const gridFor = (item: PreparedAudio, path?: ModalityPath): MediaGrid => ({ frames: tokensFor(item, path), rows: 1, cols: 1 });

  const encode = (items: PreparedAudio[], encodeOptions: EncodeOptions = {}): EncodedFeatures => {
    if (!Array.isArray(items) || items.length === 0) throw new Error(`${what}: encode needs a non-empty list of PreparedAudio`);
    items.forEach(checkItem);
    const tapLayers = encodeOptions.taps ?? [];
    tapLayers.forEach((t) => encoder.resolveTap(t));
    // Every window (or whole clip) of every item is one batch row, padded to the longest and masked.
    const rows: { item: number; window: number; start: number; length: number }[] = [];
    items.forEach((item, i) => {
      if (item.windows) item.windows.starts.forEach((start, w) => rows.push({ item: i, window: w, start, length: item.windows!.lengths[w]! }));
      else rows.push({ item: i, window: 0, start: 0, length: item.frames });
    });
    const width = windows ? windows.window : Math.max(...items.map((item) => item.frames));
    const values = new Float32Array(rows.length * width * melBins);
    rows.forEach((row, r) => {
      const item = items[row.item]!;
      values.set(item.features.subarray(row.start * melBins, (row.start + row.length) * melBins), r * width * melBins);
    });
    const finalTap = config.numLayers;
    const out = tf.tidy(() => {
      const batch = tf.tensor3d(values, [rows.length, width, melBins]);
      const resolved = [...layerList, ...tapLayers].map((t) => encoder.resolveTap(t));
      const inner = [...new Set(resolved.filter((t) => t !== finalTap))];
      const result = encoder.forward(batch, { taps: inner, lengths: rows.map((r) => r.length), pool });
      // The final state comes pooled before layer_norm (Audio Flamingo 3 / Qwen2-Audio); inner states are pooled as they are.
      const state = (t: number): tf.Tensor3D =>
        t === finalTap ? result.hidden : pool === 1 ? result.taps[inner.indexOf(t)]! : (pooler.forward(result.taps[inner.indexOf(t)]!) as tf.Tensor3D);
      const mainParts = resolved.slice(0, layerList.length).map(state);
      const main = mainParts.length === 1 ? mainParts[0]! : (tf.concat(mainParts, -1) as tf.Tensor3D);
      const extra = resolved.slice(layerList.length).map(state);
      const perItem = (t: tf.Tensor3D, withWindowEncoder: boolean): tf.Tensor2D[] => {
        const clips = items.map((_, i) => {
          const parts: tf.Tensor2D[] = [];
          const windowOf: number[] = [];
          rows.forEach((row, r) => {
            if (row.item !== i) return;
            const n = windowTokens(row.length);
            if (n === 0) return; // a last window shorter than one pool
            parts.push(tf.reshape(tf.slice(t, [r, 0, 0], [1, n, -1]), [n, t.shape[2]]) as tf.Tensor2D);
            for (let k = 0; k < n; k++) windowOf.push(row.window);
          });
          return { tokens: parts.length === 1 ? parts[0]! : (tf.concat(parts, 0) as tf.Tensor2D), windowOf };
        });
        // All clips through the window encoder in one padded, masked pass.
        return withWindowEncoder && windowEncoder ? windowEncoder.forwardBatch(clips) : clips.map((c) => c.tokens);
      };
      return { features: perItem(main, true), taps: extra.map((t) => perItem(t, false)) };
    });
    return {
      features: out.features,
      tokensPerItem: items.map((item) => tokensFor(item)),
      grids: items.map((item) => gridFor(item)),
      ...(encodeOptions.taps ? { taps: Object.fromEntries(tapLayers.map((layer, k) => [layer, out.taps[k]!])) } : {}),
    };
  };

  return {
    name,
    module: new ModalityModule(windowEncoder ? { encoder, window_encoder: windowEncoder } : { encoder }),
    encoder,
    windowEncoder,
    windows,
    pool,
    featureDim,
    prepare,
    prepareAll: (raws) => raws.map(prepare),
    tokensFor,
    tokensForFrames,
    gridFor,
    continuousIn: { featureDim, encode },
  };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of ${(value as unknown as { length: number }).length}`;
  if (typeof value === 'object') return `an object with keys ${JSON.stringify(Object.keys(value as object))}`;
  return typeof value;
}

