/**
 * WAV (RIFF/WAVE) bytes or files to Float32 samples in [-1, 1]: PCM 8/16/24/32-bit, IEEE float 32/64-bit,
 * WAVE_FORMAT_EXTENSIBLE with either sub-format, any channel count up to a cap, mixed down to mono or kept.
 *
 * The parser is this package's own. The npm readers we tried (wavefile 11.0.0, node-wav 0.0.2) return samples
 * from damaged files: a data chunk cut short, 0 channels, a 7-bit depth, format code 99, a 0 Hz rate
 * (docs/audio.md lists what each did). Here every header field that decoding depends on is checked and every
 * length is checked against the bytes present, so a damaged file is an AudioInputError, never a guess.
 *
 * Facts used: Microsoft's RIFF/WAVE and WAVEFORMATEXTENSIBLE layouts (KSDATAFORMAT_SUBTYPE_* GUIDs); the
 * integer-to-float scaling is torchaudio's / libsndfile's (8-bit unsigned: (v - 128) / 128; n-bit signed:
 * v / 2^(n-1)), which Python's `wave` module plus numpy reproduce in the fuzz oracle.
 */
import { readFileSync } from 'node:fs';
import { AudioInputError } from './errors';
import type { AudioClip, MultiChannelAudio, WavInfo } from './types';

/** Accepted sample rates by default: 1 kHz (below any real recording) to 768 kHz (the highest studio rate). */
export const DEFAULT_MIN_SAMPLE_RATE = 1000;
/** Highest sample rate accepted by default (768 kHz). */
export const DEFAULT_MAX_SAMPLE_RATE = 768_000;
/** Default channel cap: 64 (ambisonic and array recordings stay under it; a damaged header rarely does). */
export const DEFAULT_MAX_CHANNELS = 64;
/**
 * Default memory budget of one decode: 256 MiB of Float32 output (the channels plus the mixdown), checked from
 * the header before any sample buffer exists. That is about 11 minutes of 48 kHz stereo or 67 minutes of 16 kHz mono.
 */
export const DEFAULT_MAX_DECODE_BYTES = 256 * 2 ** 20;

/** Bounds checked before decoding; shared by `audioFromPcm`. */
export interface AudioLimits {
  /** Lowest accepted sample rate in Hz (default DEFAULT_MIN_SAMPLE_RATE). */
  minSampleRate?: number;
  /** Highest accepted sample rate in Hz (default DEFAULT_MAX_SAMPLE_RATE). */
  maxSampleRate?: number;
  /** Most channels accepted (default DEFAULT_MAX_CHANNELS). */
  maxChannels?: number;
  /** Memory budget of one decode in bytes (default DEFAULT_MAX_DECODE_BYTES); `Infinity` turns it off. */
  maxDecodeBytes?: number;
}

export interface WavDecodeOptions extends AudioLimits {
  /**
   * Float samples outside [-1, 1] (legal in float WAVs, e.g. a mix that clips): 'clip' (default) clamps them,
   * 'keep' passes them through, 'error' refuses the file. Integer PCM is always within [-1, 1).
   */
  outOfRange?: 'clip' | 'keep' | 'error';
  /** `decodeWav` only: mix all channels to mono by their mean ('mix', default) or take one channel (0-based). */
  channel?: 'mix' | number;
}

/** A decoded clip (mono) with what the header said. */
export interface DecodedWav extends AudioClip {
  /** What the header said. */
  info: WavInfo;
}

/** Every channel of a decoded file with what the header said. */
export interface DecodedWavChannels extends MultiChannelAudio {
  /** What the header said. */
  info: WavInfo;
}

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_IEEE_FLOAT = 3;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
/** Bytes 2..15 of every KSDATAFORMAT_SUBTYPE_* GUID (the first two bytes hold the format code). */
const KSDATAFORMAT_SUFFIX = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];
/** Names of format codes that are real but not decoded here, for the error message. */
const KNOWN_FORMATS: Record<number, string> = {
  0x0002: 'Microsoft ADPCM',
  0x0006: 'A-law',
  0x0007: 'mu-law',
  0x0011: 'IMA ADPCM',
  0x0031: 'GSM 6.10',
  0x0050: 'MPEG',
  0x0055: 'MPEG layer 3',
  0x00ff: 'AAC',
  0xf1ac: 'FLAC',
};
const CONVERT_HINT = 'convert it to 16-bit PCM or 32-bit float WAV (e.g. `ffmpeg -i in -c:a pcm_s16le out.wav`)';

const sourceOf = (bytes: Uint8Array): string => `<${bytes.length} bytes>`;
const ascii = (b: Uint8Array, at: number): string => String.fromCharCode(b[at]!, b[at + 1]!, b[at + 2]!, b[at + 3]!);
const printable = (id: string): string => JSON.stringify(id);

/**
 * Reads and checks the header of a WAV file without decoding samples: every field decoding depends on, the
 * chunk walk, the data chunk's extent against the bytes present, and the limits.
 */
export function readWavInfo(bytes: Uint8Array, limits: AudioLimits = {}, source = sourceOf(bytes)): WavInfo {
  const fail = (code: ConstructorParameters<typeof AudioInputError>[0], msg: string): never => {
    throw new AudioInputError(code, msg, source);
  };
  if (!(bytes instanceof Uint8Array)) {
    fail('unknown-format', `expected WAV bytes as a Uint8Array (or a file path), got ${describe(bytes)}`);
  }
  if (bytes.length < 12) fail('corrupt', `${bytes.length} bytes is shorter than the 12-byte RIFF/WAVE header; the file is truncated or not a WAV`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const riff = ascii(bytes, 0);
  if (riff === 'RIFX' || riff === 'RF64' || riff === 'BW64') {
    fail('unknown-format', `${riff} containers (big-endian or 64-bit WAV) are not supported; ${CONVERT_HINT}`);
  }
  if (riff !== 'RIFF' || ascii(bytes, 8) !== 'WAVE') {
    fail('unknown-format', `not a WAV file: expected "RIFF....WAVE" at the start, got ${printable(riff)} ... ${printable(ascii(bytes, 8))}`);
  }
  const riffEnd = 8 + view.getUint32(4, true);

  let fmt: Omit<WavInfo, 'frames' | 'dataOffset' | 'dataBytes'> | undefined;
  for (let offset = 12; ; ) {
    if (offset + 8 > bytes.length) {
      fail('corrupt', offset >= bytes.length
        ? `no "data" chunk before the end of the file (${fmt ? 'a "fmt " chunk was found' : 'nor a "fmt " chunk'}); the file is truncated or damaged`
        : `the chunk header at byte ${offset} is cut short (${bytes.length - offset} of 8 bytes); the file is truncated`);
    }
    const id = ascii(bytes, offset);
    const size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    const end = body + size;
    if (id === 'data') {
      if (!fmt) fail('corrupt', `the "data" chunk at byte ${offset} comes before any "fmt " chunk, so its samples cannot be read`);
      if (end > bytes.length) {
        fail('corrupt', `the "data" chunk claims ${size} bytes but only ${bytes.length - body} follow it; the file is truncated`);
      }
      if (end > riffEnd) {
        fail('corrupt', `the RIFF header says the file ends at byte ${riffEnd} but the "data" chunk ends at byte ${end}; the header disagrees with itself`);
      }
      const f = fmt!;
      const blockAlign = f.channels * (f.bitsPerSample / 8);
      if (size % blockAlign !== 0) {
        fail('corrupt', `the "data" chunk holds ${size} bytes, not a whole number of ${blockAlign}-byte frames (${f.channels} channels x ${f.bitsPerSample} bits); the file is damaged`);
      }
      const frames = size / blockAlign;
      if (frames === 0) fail('empty', 'the "data" chunk holds 0 samples; there is no audio to use');
      const budget = limits.maxDecodeBytes ?? DEFAULT_MAX_DECODE_BYTES;
      const need = frames * (f.channels + 1) * 4;
      if (need > budget) {
        fail('too-large', `decoding ${frames} frames x ${f.channels} channels needs ${mib(need)} MiB of Float32, over the ${mib(budget)} MiB budget; raise maxDecodeBytes or split the file`);
      }
      return { ...f, frames, dataOffset: body, dataBytes: size };
    }
    if (end > bytes.length) {
      fail('corrupt', `the ${printable(id)} chunk at byte ${offset} claims ${size} bytes but only ${bytes.length - body} follow it; the file is truncated or the chunk size is damaged`);
    }
    if (id === 'fmt ') {
      if (fmt) fail('corrupt', `a second "fmt " chunk at byte ${offset}; a WAV has exactly one`);
      fmt = readFmt(bytes, view, body, size, limits, fail);
    }
    offset = end + (size & 1); // chunks are padded to an even length
  }
}

function readFmt(
  bytes: Uint8Array,
  view: DataView,
  at: number,
  size: number,
  limits: AudioLimits,
  fail: (code: ConstructorParameters<typeof AudioInputError>[0], msg: string) => never,
): Omit<WavInfo, 'frames' | 'dataOffset' | 'dataBytes'> {
  if (size < 16) fail('corrupt', `the "fmt " chunk is ${size} bytes, shorter than the 16 a WAV format header needs`);
  const tag = view.getUint16(at, true);
  const channels = view.getUint16(at + 2, true);
  const sampleRate = view.getUint32(at + 4, true);
  // at + 8: byte rate, which decoding never needs (it is derived from the fields below, and writers get it wrong).
  const blockAlign = view.getUint16(at + 12, true);
  const bitsPerSample = view.getUint16(at + 14, true);
  let formatCode = tag;
  let validBitsPerSample = bitsPerSample;
  const extensible = tag === WAVE_FORMAT_EXTENSIBLE;
  if (extensible) {
    if (size < 40) fail('corrupt', `a WAVE_FORMAT_EXTENSIBLE "fmt " chunk needs 40 bytes, this one has ${size}`);
    const cbSize = view.getUint16(at + 16, true);
    if (cbSize < 22) fail('corrupt', `a WAVE_FORMAT_EXTENSIBLE header needs an extension of at least 22 bytes, this one declares ${cbSize}`);
    validBitsPerSample = view.getUint16(at + 18, true);
    formatCode = view.getUint16(at + 24, true);
    for (let i = 0; i < KSDATAFORMAT_SUFFIX.length; i++) {
      if (bytes[at + 26 + i] !== KSDATAFORMAT_SUFFIX[i]) {
        const guid = Array.from(bytes.subarray(at + 24, at + 40), (b) => b.toString(16).padStart(2, '0')).join('');
        fail('unsupported-format', `the WAVE_FORMAT_EXTENSIBLE sub-format GUID ${guid} is not a KSDATAFORMAT_SUBTYPE_* GUID; ${CONVERT_HINT}`);
      }
    }
  }
  if (formatCode !== WAVE_FORMAT_PCM && formatCode !== WAVE_FORMAT_IEEE_FLOAT) {
    const name = KNOWN_FORMATS[formatCode];
    fail('unsupported-format', `WAV format code ${formatCode} (0x${formatCode.toString(16)}${name ? `, ${name}` : ', unknown'}) is not supported: only PCM (1) and IEEE float (3), plain or extensible; ${CONVERT_HINT}`);
  }
  const encoding = formatCode === WAVE_FORMAT_PCM ? 'pcm' : 'float';
  const depths = encoding === 'pcm' ? [8, 16, 24, 32] : [32, 64];
  if (!depths.includes(bitsPerSample)) {
    fail('unsupported-format', `${bitsPerSample}-bit ${encoding === 'pcm' ? 'PCM' : 'float'} samples are not supported (expected ${depths.join(', ')} bits); ${CONVERT_HINT}`);
  }
  if (validBitsPerSample < 1 || validBitsPerSample > bitsPerSample) {
    fail('corrupt', `the extensible header says ${validBitsPerSample} valid bits in a ${bitsPerSample}-bit container; expected 1..${bitsPerSample}`);
  }
  const maxChannels = limits.maxChannels ?? DEFAULT_MAX_CHANNELS;
  if (channels === 0 || channels > maxChannels) {
    fail('bad-channels', `the header says ${channels} channels; expected 1..${maxChannels} (raise maxChannels for larger arrays)`);
  }
  checkSampleRate(sampleRate, limits, fail);
  if (blockAlign !== channels * (bitsPerSample / 8)) {
    fail('corrupt', `the header's block align is ${blockAlign} bytes but ${channels} channels x ${bitsPerSample} bits make ${channels * (bitsPerSample / 8)}; the header is damaged`);
  }
  return { encoding, formatCode, extensible, bitsPerSample, validBitsPerSample, channels, sampleRate };
}

/** Shared by the WAV reader and raw PCM: an integer rate within the limits. */
export function checkSampleRate(
  sampleRate: number,
  limits: AudioLimits,
  fail: (code: 'bad-sample-rate', msg: string) => never,
): void {
  const lo = limits.minSampleRate ?? DEFAULT_MIN_SAMPLE_RATE;
  const hi = limits.maxSampleRate ?? DEFAULT_MAX_SAMPLE_RATE;
  if (!Number.isInteger(sampleRate) || sampleRate < lo || sampleRate > hi) {
    fail('bad-sample-rate', `sample rate ${sampleRate} Hz is outside ${lo}..${hi} Hz (integers only); check the file, or set minSampleRate/maxSampleRate`);
  }
}

/** Decodes every channel of a WAV file (bytes or a path) to Float32 samples. */
export function decodeWavChannels(input: Uint8Array | string, options: WavDecodeOptions = {}): DecodedWavChannels {
  const { bytes, source } = readInput(input);
  const info = readWavInfo(bytes, options, source);
  const { channels: nch, frames, bitsPerSample, encoding, dataOffset } = info;
  const view = new DataView(bytes.buffer, bytes.byteOffset + dataOffset, info.dataBytes);
  const channels = Array.from({ length: nch }, () => new Float32Array(frames));
  const bytesPer = bitsPerSample / 8;
  const outOfRange = options.outOfRange ?? 'clip';
  for (let c = 0; c < nch; c++) {
    const out = channels[c]!;
    let p = c * bytesPer;
    const stride = nch * bytesPer;
    if (encoding === 'pcm') {
      if (bitsPerSample === 8) for (let i = 0; i < frames; i++, p += stride) out[i] = (view.getUint8(p) - 128) / 128;
      else if (bitsPerSample === 16) for (let i = 0; i < frames; i++, p += stride) out[i] = view.getInt16(p, true) / 32768;
      else if (bitsPerSample === 24) {
        for (let i = 0; i < frames; i++, p += stride) {
          const v = view.getUint8(p) | (view.getUint8(p + 1) << 8) | (view.getInt8(p + 2) << 16);
          out[i] = v / 8388608;
        }
      } else for (let i = 0; i < frames; i++, p += stride) out[i] = view.getInt32(p, true) / 2147483648;
    } else {
      for (let i = 0; i < frames; i++, p += stride) {
        const v = bitsPerSample === 32 ? view.getFloat32(p, true) : view.getFloat64(p, true);
        if (!Number.isFinite(v)) {
          throw new AudioInputError('bad-samples', `channel ${c} sample ${i} is ${v}; float WAV samples must be finite`, source);
        }
        if (v > 1 || v < -1) {
          if (outOfRange === 'error') {
            throw new AudioInputError('bad-samples', `channel ${c} sample ${i} is ${v}, outside [-1, 1]; pass outOfRange: 'clip' or 'keep' to accept it`, source);
          }
          out[i] = outOfRange === 'clip' ? Math.max(-1, Math.min(1, v)) : v;
        } else out[i] = v;
      }
    }
  }
  return { channels, sampleRate: info.sampleRate, info };
}

/** Decodes a WAV file (bytes or a path) to mono: the mean of its channels, or the one `options.channel` names. */
export function decodeWav(input: Uint8Array | string, options: WavDecodeOptions = {}): DecodedWav {
  const choice = options.channel ?? 'mix';
  const { channels, sampleRate, info } = decodeWavChannels(input, options);
  if (choice !== 'mix') {
    if (!Number.isInteger(choice) || choice < 0 || choice >= channels.length) {
      throw new AudioInputError('bad-channels', `channel ${choice} was asked for but the file has ${channels.length} (0..${channels.length - 1}); pass channel: 'mix' to average them`, typeof input === 'string' ? input : sourceOf(input));
    }
    return { samples: channels[choice]!, sampleRate, info };
  }
  return { samples: mixdown(channels), sampleRate, info };
}

/** The mean of equal-length channels, summed in float64. One channel is returned as is. */
export function mixdown(channels: readonly Float32Array[]): Float32Array {
  if (channels.length === 1) return channels[0]!;
  const n = channels[0]!.length;
  const out = new Float32Array(n);
  const k = channels.length;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < k; c++) s += channels[c]![i]!;
    out[i] = s / k;
  }
  return out;
}

function readInput(input: Uint8Array | string): { bytes: Uint8Array; source: string } {
  if (typeof input === 'string') {
    try {
      return { bytes: readFileSync(input), source: input };
    } catch (err) {
      throw new AudioInputError('io', `could not read the file: ${err instanceof Error ? err.message : String(err)}`, input);
    }
  }
  if (!(input instanceof Uint8Array)) {
    throw new AudioInputError('unknown-format', `expected WAV bytes as a Uint8Array or a file path, got ${describe(input)}`);
  }
  return { bytes: input, source: sourceOf(input) };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'an object';
  return typeof value;
}

const mib = (n: number): string => (n / 2 ** 20).toFixed(1);
