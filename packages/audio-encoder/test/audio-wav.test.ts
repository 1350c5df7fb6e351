// The WAV reader and raw PCM: every supported format decodes to the values the fixture wrote (scaled as
// torchaudio does), channels kept or mixed, and each kind of bad input is an AudioInputError with its code.
import { describe, it, expect } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AudioInputError, type AudioInputErrorCode } from '../src/audio/errors';
import { audioFromPcm, loadAudio } from '../src/audio/pcm';
import { decodeWav, decodeWavChannels, readWavInfo } from '../src/audio/wav';
import { encodeWav, toneValues, type WavSpec } from './wav-fixtures';

const scale = (v: number, bits: number, encoding: 'pcm' | 'float'): number =>
  encoding === 'float' ? Math.fround(v) : bits === 8 ? (v - 128) / 128 : v / 2 ** (bits - 1);

const codeOf = (fn: () => unknown): AudioInputErrorCode | 'no error' => {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof AudioInputError)) throw err;
    expect(err.message.length).toBeGreaterThan(30);
    return err.code;
  }
  return 'no error';
};

const formats: [number, 'pcm' | 'float', boolean][] = [
  [8, 'pcm', false], [16, 'pcm', false], [24, 'pcm', false], [32, 'pcm', false], [32, 'float', false], [64, 'float', false],
  [16, 'pcm', true], [24, 'pcm', true], [32, 'float', true], [64, 'float', true],
];

describe('decodeWav', () => {
  it.each(formats)('%i-bit %s (extensible %s): exact values, 3 channels kept, mixed by their mean', (bits, encoding, extensible) => {
    const channels = [0, 1, 2].map((c) => toneValues(50, bits, encoding, c));
    const spec: WavSpec = { channels, sampleRate: 22050, bits: bits as WavSpec['bits'], encoding, extensible };
    const bytes = encodeWav(spec);
    const kept = decodeWavChannels(bytes);
    expect(kept.sampleRate).toBe(22050);
    expect(kept.info).toMatchObject({ encoding, bitsPerSample: bits, channels: 3, frames: 50, extensible });
    channels.forEach((values, c) => expect(Array.from(kept.channels[c]!)).toEqual(values.map((v) => Math.fround(scale(v, bits, encoding)))));
    const mixed = decodeWav(bytes);
    const want = Array.from({ length: 50 }, (_, i) => Math.fround((kept.channels[0]![i]! + kept.channels[1]![i]! + kept.channels[2]![i]!) / 3));
    expect(Array.from(mixed.samples)).toEqual(want);
    expect(Array.from(decodeWav(bytes, { channel: 2 }).samples)).toEqual(Array.from(kept.channels[2]!));
    for (const s of mixed.samples) expect(Math.abs(s)).toBeLessThanOrEqual(1);
  });

  it('skips other chunks (odd sizes padded) and reads from a path; a missing file is an io error', () => {
    const bytes = encodeWav({ channels: [[1, -2, 3]], sampleRate: 16000, bits: 16, encoding: 'pcm', extraChunks: [['LIST', new Uint8Array(7)], ['junk', new Uint8Array(2)]] });
    expect(Array.from(decodeWav(bytes).samples)).toEqual([1, -2, 3].map((v) => v / 32768));
    const dir = mkdtempSync(join(tmpdir(), 'chimera-wav-'));
    try {
      writeFileSync(join(dir, 'a.wav'), bytes);
      expect(decodeWav(join(dir, 'a.wav')).samples.length).toBe(3);
      expect(codeOf(() => decodeWav(join(dir, 'missing.wav')))).toBe('io');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('float samples outside [-1, 1] are clipped by default, kept or refused on request; NaN and Inf are refused', () => {
    const bytes = encodeWav({ channels: [[0.5, 1.5, -2]], sampleRate: 16000, bits: 32, encoding: 'float' });
    expect(Array.from(decodeWav(bytes).samples)).toEqual([0.5, 1, -1]);
    expect(Array.from(decodeWav(bytes, { outOfRange: 'keep' }).samples)).toEqual([0.5, 1.5, -2]);
    expect(codeOf(() => decodeWav(bytes, { outOfRange: 'error' }))).toBe('bad-samples');
    expect(codeOf(() => decodeWav(encodeWav({ channels: [[0, NaN]], sampleRate: 16000, bits: 32, encoding: 'float' })))).toBe('bad-samples');
    expect(codeOf(() => decodeWav(encodeWav({ channels: [[Infinity]], sampleRate: 16000, bits: 64, encoding: 'float' })))).toBe('bad-samples');
  });

  it('bad files: each refusal has its code and names the source', () => {
    const good = encodeWav({ channels: [[1, 2, 3, 4], [5, 6, 7, 8]], sampleRate: 16000, bits: 16, encoding: 'pcm' });
    const edit = (at: number, value: number, width: 2 | 4 = 2): Uint8Array => {
      const b = Uint8Array.from(good);
      if (width === 2) new DataView(b.buffer).setUint16(at, value, true);
      else new DataView(b.buffer).setUint32(at, value, true);
      return b;
    };
    expect(codeOf(() => decodeWav(good.subarray(0, good.length - 3)))).toBe('corrupt'); // data cut short
    expect(codeOf(() => decodeWav(good.subarray(0, 30)))).toBe('corrupt'); // fmt chunk cut short
    expect(codeOf(() => decodeWav(good.subarray(0, 8)))).toBe('corrupt');
    expect(codeOf(() => decodeWav(new TextEncoder().encode('ID3\u0004 this is an mp3 really')))).toBe('unknown-format');
    expect(codeOf(() => decodeWav(edit(20, 7)))).toBe('unsupported-format'); // mu-law
    expect(codeOf(() => decodeWav(edit(20, 99)))).toBe('unsupported-format');
    expect(codeOf(() => decodeWav(edit(34, 12)))).toBe('unsupported-format'); // 12-bit
    expect(codeOf(() => decodeWav(edit(22, 0)))).toBe('bad-channels');
    expect(codeOf(() => decodeWav(edit(22, 300)))).toBe('bad-channels');
    expect(codeOf(() => decodeWav(edit(24, 0, 4)))).toBe('bad-sample-rate');
    expect(codeOf(() => decodeWav(edit(24, 50_000_000, 4)))).toBe('bad-sample-rate');
    expect(codeOf(() => decodeWav(edit(32, 3)))).toBe('corrupt'); // block align
    expect(codeOf(() => decodeWav(edit(40, 0, 4)))).toBe('empty');
    expect(codeOf(() => decodeWav(edit(40, 6, 4)))).toBe('corrupt'); // not a whole frame
    expect(codeOf(() => decodeWav(edit(40, 0xfffffff0, 4)))).toBe('corrupt');
    expect(codeOf(() => decodeWav(edit(4, 20, 4)))).toBe('corrupt'); // RIFF size ends before the data
    expect(codeOf(() => decodeWav(good, { maxDecodeBytes: 16 }))).toBe('too-large');
    expect(codeOf(() => decodeWav(good, { channel: 2 }))).toBe('bad-channels');
    expect(() => decodeWav(edit(20, 7))).toThrow(new RegExp(`^<${good.length} bytes>: WAV format code 7 \\(0x7, mu-law\\)`));
    expect(readWavInfo(good)).toMatchObject({ channels: 2, frames: 4, dataOffset: 44, dataBytes: 16 });
  });
});

describe('raw PCM', () => {
  it('mono passes through, channels are mixed, and bad arrays are refused with a reason', () => {
    const x = Float32Array.of(0.1, -0.2, 0.3);
    expect(audioFromPcm(x, 16000).samples).toBe(x);
    expect(Array.from(audioFromPcm([Float32Array.of(1, 0), Float32Array.of(0, 0)], 8000).samples)).toEqual([0.5, 0]);
    expect(codeOf(() => audioFromPcm(new Float32Array(0), 16000))).toBe('empty');
    expect(codeOf(() => audioFromPcm(Float32Array.of(0, NaN), 16000))).toBe('bad-samples');
    expect(codeOf(() => audioFromPcm(Float32Array.of(0, 1200), 16000))).toBe('bad-samples');
    expect(() => audioFromPcm(Float32Array.of(0, 1200), 16000)).toThrow(/int16: x \/ 32768/);
    expect(Array.from(audioFromPcm(Float32Array.of(0, 2), 16000, { outOfRange: 'clip' }).samples)).toEqual([0, 1]);
    expect(codeOf(() => audioFromPcm([Float32Array.of(0), Float32Array.of(0, 1)], 16000))).toBe('bad-samples');
    expect(codeOf(() => audioFromPcm([], 16000))).toBe('bad-channels');
    expect(codeOf(() => audioFromPcm(x, 16000.5))).toBe('bad-sample-rate');
    expect(codeOf(() => audioFromPcm(x, 5))).toBe('bad-sample-rate');
  });

  it('loadAudio takes WAV bytes or a clip to 16 kHz mono', () => {
    const wav = encodeWav({ channels: [toneValues(441, 16, 'pcm'), toneValues(441, 16, 'pcm', 1)], sampleRate: 44100, bits: 16, encoding: 'pcm' });
    const a = loadAudio(wav);
    expect(a.sampleRate).toBe(16000);
    expect(a.samples.length).toBe(160);
    const b = loadAudio({ samples: new Float32Array(800), sampleRate: 8000 });
    expect(b.samples.length).toBe(1600);
  });
});
