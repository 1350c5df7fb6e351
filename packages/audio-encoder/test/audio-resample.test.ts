// Resampling parity with torchaudio.functional.resample (defaults: sinc with a Hann window, lowpass_filter_width
// 6, rolloff 0.99) within 1e-4 on test signals at several rate pairs, down and up, full and odd short lengths;
// plus the properties a broken filter would miss (a tone below the cutoff kept, one above it removed).
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTorchScript, torchAvailable } from '@chimera/core/testing';
import { AudioInputError } from '../src/audio/errors';
import { resample } from '../src/audio/resample';

const script = join(__dirname, 'reference', 'audio_frontend_reference.py');
const hasTorch = torchAvailable();

const readF32 = (path: string): Float32Array => {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

describe.skipIf(!hasTorch)('resample matches torchaudio.functional.resample', () => {
  let dir = '';
  let cases: { name: string; orig: number; new: number; length: number; outLength: number }[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'chimera-resample-'));
    cases = JSON.parse(runTorchScript(script, ['resample', dir])).cases;
    return () => rmSync(dir, { recursive: true, force: true });
  });

  it('within 1e-4 at every rate pair and length', () => {
    expect(cases.length).toBe(14);
    let overall = 0;
    for (const c of cases) {
      const input = readF32(join(dir, `${c.name}_in.f32`));
      const want = readF32(join(dir, `${c.name}_out.f32`));
      const got = resample(input, c.orig, c.new);
      expect(got.length, c.name).toBe(want.length);
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      expect(worst, `${c.name}: max |diff| ${worst}`).toBeLessThan(1e-4);
      overall = Math.max(overall, worst);
    }
    console.log(`resample parity: worst max |diff| over ${cases.length} cases ${overall.toExponential(2)}`);
  });

  it('the comparison can fail: a slightly different filter (rolloff 0.95) is caught', () => {
    const c = cases[0]!;
    const want = readF32(join(dir, `${c.name}_out.f32`));
    const got = resample(readF32(join(dir, `${c.name}_in.f32`)), c.orig, c.new, { rolloff: 0.95 });
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    expect(worst).toBeGreaterThan(1e-3);
  });
});

describe('resample properties', () => {
  const tone = (rate: number, hz: number, n: number): Float32Array =>
    Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin((2 * Math.PI * hz * i) / rate));
  const rms = (x: Float32Array, from = 0, to = x.length): number => {
    let s = 0;
    for (let i = from; i < to; i++) s += x[i]! ** 2;
    return Math.sqrt(s / (to - from));
  };

  it('keeps a 1 kHz tone and removes a 12 kHz one going 44.1 -> 16 kHz (output length ceil(16000 * n / 44100))', () => {
    const kept = resample(tone(44100, 1000, 44100), 44100, 16000);
    expect(kept.length).toBe(16000);
    expect(rms(kept, 200, 15800)).toBeCloseTo(0.5 / Math.SQRT2, 2);
    const removed = resample(tone(44100, 12000, 44100), 44100, 16000);
    expect(rms(removed, 200, 15800)).toBeLessThan(0.01);
    expect(resample(new Float32Array(1001), 44100, 16000).length).toBe(Math.ceil((16000 * 1001) / 44100));
  });

  it('equal rates give a copy; bad rates are an AudioInputError naming the argument', () => {
    const x = tone(16000, 440, 100);
    const y = resample(x, 16000, 16000);
    expect(y).toEqual(x);
    expect(y).not.toBe(x);
    expect(() => resample(x, 0, 16000)).toThrow(AudioInputError);
    expect(() => resample(x, 44100.5, 16000)).toThrow(/fromRate must be a positive integer/);
    expect(() => resample(x, 16000, -1)).toThrow(/toRate/);
  });
});
