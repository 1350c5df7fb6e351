/**
 * Raw PCM in: Float32 samples (one array, or one per channel) with their rate, checked the way decoded WAV is
 * (finite, within [-1, 1] unless told otherwise, a sane rate and channel count, at least one sample), and the
 * loader that takes any accepted input to a mono clip at the rate a model wants.
 */
import { AudioInputError } from './errors';
import { resample } from './resample';
import type { AudioClip } from './types';
import { checkSampleRate, DEFAULT_MAX_CHANNELS, decodeWav, mixdown, type AudioLimits, type WavDecodeOptions } from './wav';

export interface PcmOptions extends AudioLimits {
  /** Samples outside [-1, 1]: 'error' (default for raw PCM: it usually means int16 values passed unscaled), 'clip' or 'keep'. */
  outOfRange?: 'clip' | 'keep' | 'error';
  /** Names the clip in error messages (default `<N samples>`). */
  source?: string;
}

/**
 * Checks raw PCM and returns it as a mono clip: one Float32Array is mono; several are channels of equal length,
 * mixed down by their mean. Nothing is copied when the input is mono, valid and needs no clipping.
 */
export function audioFromPcm(samples: Float32Array | readonly Float32Array[], sampleRate: number, options: PcmOptions = {}): AudioClip {
  const channels = samples instanceof Float32Array ? [samples] : samples;
  const source = options.source ?? `<${channels[0]?.length ?? 0} samples>`;
  const fail = (code: ConstructorParameters<typeof AudioInputError>[0], msg: string): never => {
    throw new AudioInputError(code, msg, source);
  };
  if (!Array.isArray(channels) && !(samples instanceof Float32Array)) {
    fail('bad-samples', `expected a Float32Array or an array of Float32Array channels, got ${typeof samples}`);
  }
  const maxChannels = options.maxChannels ?? DEFAULT_MAX_CHANNELS;
  if (channels.length === 0 || channels.length > maxChannels) {
    fail('bad-channels', `got ${channels.length} channels; expected 1..${maxChannels}`);
  }
  checkSampleRate(sampleRate, options, fail);
  const n = channels[0]!.length;
  channels.forEach((ch, c) => {
    if (!(ch instanceof Float32Array)) fail('bad-samples', `channel ${c} is not a Float32Array; convert with Float32Array.from(x) (scale integers to [-1, 1] first)`);
    if (ch.length !== n) fail('bad-samples', `channel ${c} has ${ch.length} samples but channel 0 has ${n}; channels must be the same length`);
  });
  if (n === 0) fail('empty', 'the clip has 0 samples; there is no audio to use');
  const outOfRange = options.outOfRange ?? 'error';
  const cleaned = channels.map((ch, c) => {
    let out: Float32Array | undefined;
    for (let i = 0; i < n; i++) {
      const v = ch[i]!;
      if (!Number.isFinite(v)) fail('bad-samples', `channel ${c} sample ${i} is ${v}; samples must be finite`);
      if (v > 1 || v < -1) {
        if (outOfRange === 'error') {
          fail('bad-samples', `channel ${c} sample ${i} is ${v}, outside [-1, 1]; scale integer PCM first (int16: x / 32768), or pass outOfRange: 'clip' or 'keep'`);
        }
        if (outOfRange === 'clip') {
          out ??= Float32Array.from(ch);
          out[i] = v > 1 ? 1 : -1;
        }
      }
    }
    return out ?? ch;
  });
  return { samples: mixdown(cleaned), sampleRate };
}

export interface LoadAudioOptions extends WavDecodeOptions {
  /** Rate of the returned clip (default 16000, Whisper's). */
  sampleRate?: number;
}

/**
 * Any accepted input to a checked mono clip at `options.sampleRate` (default 16 kHz): WAV bytes, a WAV path, or
 * a clip of raw PCM (`{ samples, sampleRate }`). Resampling is `resample` (torchaudio's sinc/Hann filter).
 */
export function loadAudio(input: Uint8Array | string | AudioClip, options: LoadAudioOptions = {}): AudioClip {
  const target = options.sampleRate ?? 16000;
  const clip = typeof input === 'string' || input instanceof Uint8Array
    ? decodeWav(input, options)
    : audioFromPcm(input.samples, input.sampleRate, { ...options, outOfRange: options.outOfRange ?? 'error' });
  if (clip.sampleRate === target) return { samples: clip.samples, sampleRate: target };
  return { samples: resample(clip.samples, clip.sampleRate, target), sampleRate: target };
}
