// Fuzzing the WAV reader against an oracle: deterministic mutations of valid files in every supported format
// (byte edits, edits aimed at header fields and chunk sizes, truncation, insertion, deletion) and random bytes
// behind a valid RIFF/WAVE start. Every file must decode twice to the same answer within the hang bound, throw
// nothing but an AudioInputError, and agree with test/reference/wav_oracle.py: Python's `wave` + numpy for
// plain PCM, a strict header walk of its own + numpy for float and extensible files. Agreement means the same
// rate, channel count and bit-identical samples, or both refusing. `npm run fuzz` runs 10,000 cases.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findTorchPython, fuzzRuns, fuzzTimeout, runTorchScript, torchAvailable } from '@chimera/core/testing';
import { AudioInputError } from '../src/audio/errors';
import { decodeWavChannels, type DecodedWavChannels } from '../src/audio/wav';
import { encodeWav, rng, toneValues, type WavSpec } from './wav-fixtures';

const RUNS = fuzzRuns(2400);
const HANG_MS = 5000;
const oracleScript = join(__dirname, 'reference', 'wav_oracle.py');
const hasPython = torchAvailable() && findTorchPython() !== null;

function bases(): Uint8Array[] {
  const specs: WavSpec[] = [
    { channels: [toneValues(40, 16, 'pcm'), toneValues(40, 16, 'pcm', 1)], sampleRate: 16000, bits: 16, encoding: 'pcm' },
    { channels: [toneValues(60, 8, 'pcm')], sampleRate: 8000, bits: 8, encoding: 'pcm', extraChunks: [['LIST', new Uint8Array(5).fill(65)]] },
    { channels: [0, 1, 2].map((c) => toneValues(30, 24, 'pcm', c)), sampleRate: 44100, bits: 24, encoding: 'pcm' },
    { channels: [toneValues(30, 32, 'pcm')], sampleRate: 48000, bits: 32, encoding: 'pcm' },
    { channels: [toneValues(30, 24, 'pcm'), toneValues(30, 24, 'pcm', 2)], sampleRate: 96000, bits: 24, encoding: 'pcm', extensible: true },
    { channels: [toneValues(40, 32, 'float'), toneValues(40, 32, 'float', 1)], sampleRate: 22050, bits: 32, encoding: 'float', extraChunks: [['fact', new Uint8Array(4)]] },
    { channels: [toneValues(25, 64, 'float')], sampleRate: 16000, bits: 64, encoding: 'float', extensible: true },
  ];
  return specs.map(encodeWav);
}

/** Offsets of every chunk header in a well-formed file: where the size fields live. */
function chunkOffsets(b: Uint8Array): number[] {
  const out: number[] = [];
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let at = 12; at + 8 <= b.length; ) {
    out.push(at);
    const size = dv.getUint32(at + 4, true);
    at += 8 + size + (size & 1);
  }
  return out;
}

const INTERESTING = [0, 1, 2, 3, 4, 7, 8, 12, 16, 17, 22, 24, 32, 40, 64, 65, 255, 256, 999, 1000, 0x7fff, 0xfffe, 0xffff, 0x10000, 768_000, 768_001, 0x7fffffff, 0xffffffff];

/** One deterministic mutation set per case index. */
function mutateCase(base: Uint8Array, random: () => number): Uint8Array {
  let b = Array.from(base);
  const heads = chunkOffsets(base);
  const edits = 1 + Math.floor(random() * 3);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  for (let e = 0; e < edits; e++) {
    const kind = random();
    const at = Math.floor(random() * (b.length + 1));
    if (kind < 0.3) {
      if (at < b.length) b[at] = Math.floor(random() * 256);
    } else if (kind < 0.55) {
      // A header field: the fmt body (fields at 0..40) or a chunk/RIFF size, set to a boundary value.
      const fmtBody = heads[0]! + 8;
      const target = random() < 0.5 ? fmtBody + pick([0, 2, 4, 8, 12, 14, 16, 18, 24, 26]) : random() < 0.3 ? 4 : pick(heads) + 4;
      const value = pick(INTERESTING);
      const width = target === 4 || heads.includes(target - 4) || random() < 0.3 ? 4 : 2;
      for (let k = 0; k < width && target + k < b.length; k++) b[target + k] = (value >>> (8 * k)) & 0xff;
    } else if (kind < 0.75) {
      b = b.slice(0, at);
    } else if (kind < 0.87) {
      b.splice(at, 0, ...Array.from({ length: 1 + Math.floor(random() * 9) }, () => Math.floor(random() * 256)));
    } else {
      b.splice(at, 1 + Math.floor(random() * 12));
    }
  }
  return new Uint8Array(b);
}

function randomCase(random: () => number): Uint8Array {
  const b = new Uint8Array(16 + Math.floor(random() * 120)).map(() => Math.floor(random() * 256));
  b.set([0x52, 0x49, 0x46, 0x46], 0);
  b.set([0x57, 0x41, 0x56, 0x45], 8);
  if (random() < 0.7) b.set([0x66, 0x6d, 0x74, 0x20], 12); // "fmt "
  return b;
}

type Outcome = { ok: true; value: DecodedWavChannels } | { ok: false; error: AudioInputError };

function decodeTwice(bytes: Uint8Array, slowest: { ms: number }): Outcome {
  const once = (): Outcome => {
    const start = performance.now();
    let result: Outcome;
    try {
      result = { ok: true, value: decodeWavChannels(bytes) };
    } catch (err) {
      if (!(err instanceof AudioInputError)) {
        throw new Error(`crash: ${bytes.length} bytes threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
      }
      result = { ok: false, error: err };
    }
    const ms = performance.now() - start;
    slowest.ms = Math.max(slowest.ms, ms);
    expect(ms, `hang: ${ms.toFixed(0)} ms for ${bytes.length} bytes`).toBeLessThan(HANG_MS);
    return result;
  };
  const a = once();
  const b = once();
  if (a.ok !== b.ok) throw new Error('nondeterministic: one decode succeeded, the other failed');
  if (a.ok && b.ok) {
    expect(b.value.channels.map((c) => Array.from(c))).toEqual(a.value.channels.map((c) => Array.from(c)));
  } else if (!a.ok && !b.ok) {
    expect(b.error.message).toBe(a.error.message);
    expect(a.error.message.startsWith(`<${bytes.length} bytes>: `), a.error.message).toBe(true);
  }
  return a;
}

function cases(): Uint8Array[] {
  const random = rng(20261202);
  const list = bases();
  const out: Uint8Array[] = [...list];
  while (out.length < RUNS) out.push(random() < 0.08 ? randomCase(random) : mutateCase(list[out.length % list.length]!, random));
  return out;
}

describe('WAV fuzz', () => {
  const files = cases();
  const outcomes: Outcome[] = [];
  const slowest = { ms: 0 };

  it(`${RUNS} mutated and random files: no crash, no hang, the same answer twice`, () => {
    for (const bytes of files) outcomes.push(decodeTwice(bytes, slowest));
    const codes = new Map<string, number>();
    for (const o of outcomes) {
      const key = o.ok ? 'decoded' : o.error.code;
      codes.set(key, (codes.get(key) ?? 0) + 1);
    }
    console.log(`WAV fuzz: ${files.length} files, slowest decode ${slowest.ms.toFixed(1)} ms; ${[...codes].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    expect(codes.get('decoded') ?? 0).toBeGreaterThan(files.length * 0.1); // mutations must leave readable files too
  }, fuzzTimeout(RUNS, 20));

  describe.skipIf(!hasPython)('against the Python oracle', () => {
    let dir = '';
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'chimera-wav-fuzz-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('every file: the same samples as the oracle, or refused by both', () => {
      expect(outcomes.length, 'the first test decodes the files; run the whole file').toBe(files.length);
      const names = files.map((_, i) => `case${i}.wav`);
      files.forEach((bytes, i) => writeFileSync(join(dir, names[i]!), bytes));
      writeFileSync(join(dir, 'index.json'), JSON.stringify(names));
      runTorchScript(oracleScript, [dir]);
      const oracle = JSON.parse(readFileSync(join(dir, 'oracle.json'), 'utf8')) as (
        | { ok: true; offset: number; rate: number; channels: number; frames: number }
        | { ok: false; why?: string; conflict?: string }
      )[];
      const blob = readFileSync(join(dir, 'oracle.f32'));
      const samples = new Float32Array(blob.buffer.slice(blob.byteOffset, blob.byteOffset + blob.byteLength));
      const tally = { bothDecoded: 0, bothRefused: 0 };
      const conflicts = oracle.filter((o) => !o.ok && o.conflict).length;
      expect(conflicts, 'Python wave and the strict oracle disagree on a header').toBe(0);
      outcomes.forEach((ours, i) => {
        const want = oracle[i]!;
        const label = `case ${i} (${files[i]!.length} bytes)`;
        if (!want.ok) {
          expect(ours.ok, `${label}: the oracle refuses it (${want.why}) but it decoded: a silent misread`).toBe(false);
          tally.bothRefused++;
          return;
        }
        if (!ours.ok) throw new Error(`${label}: the oracle decodes it (${want.channels} ch, ${want.frames} frames) but we refused: ${ours.error.message}`);
        expect(ours.value.sampleRate, label).toBe(want.rate);
        expect(ours.value.channels.length, label).toBe(want.channels);
        expect(ours.value.info.frames, label).toBe(want.frames);
        for (let c = 0; c < want.channels; c++) {
          const ch = ours.value.channels[c]!;
          for (let f = 0; f < want.frames; f++) {
            const w = samples[want.offset + f * want.channels + c]!;
            if (ch[f] !== w) throw new Error(`${label}: channel ${c} frame ${f} is ${ch[f]}, the oracle says ${w}`);
          }
        }
        tally.bothDecoded++;
      });
      console.log(`WAV fuzz oracle: ${tally.bothDecoded} decoded identically, ${tally.bothRefused} refused by both, 0 disagreements`);
      expect(tally.bothDecoded + tally.bothRefused).toBe(files.length);
    }, fuzzTimeout(RUNS, 20));
  });
});
