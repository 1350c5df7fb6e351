// The sounds dataset: determinism, balance, and every answer re-derived from the audio alone by small signal
// detectors (energy segments, a DFT peak picker, harmonic ratios, spectral flatness), so a generator bug that puts
// the wrong sound under a question fails here.
import { describe, expect, it } from 'vitest';
import {
  ANSWERS_BY_TYPE,
  LOUDNESS_BANDS,
  QUESTION_TYPES,
  SAMPLE_RATE,
  SoundsDataset,
  VOICES,
  espeakAvailable,
  questionOf,
  questionWords,
  SoundVocabulary,
  WORDS,
  type ClipScene,
  type QuestionType,
} from '../src/index';

const dataset = new SoundsDataset();
const FRAME = 160; // 10 ms

/** RMS per 10 ms frame, in dBFS. */
function frameLevels(audio: Float32Array): number[] {
  const levels: number[] = [];
  for (let start = 0; start + FRAME <= audio.length; start += FRAME) {
    let sum = 0;
    for (let i = start; i < start + FRAME; i++) sum += audio[i]! * audio[i]!;
    levels.push(10 * Math.log10(sum / FRAME + 1e-20));
  }
  return levels;
}

/** Runs of frames at least 15 dB above the noise floor (the 10th percentile frame): [first, end) in samples. */
function activeSegments(audio: Float32Array): [number, number][] {
  const levels = frameLevels(audio);
  const floor = [...levels].sort((a, b) => a - b)[Math.floor(levels.length / 10)]!; // the noise floor: events fill at most 90% of a clip
  const segments: [number, number][] = [];
  let start = -1;
  levels.forEach((level, i) => {
    const on = level > floor + 15;
    if (on && start < 0) start = i;
    if (!on && start >= 0) {
      segments.push([start * FRAME, i * FRAME]);
      start = -1;
    }
  });
  if (start >= 0) segments.push([start * FRAME, levels.length * FRAME]);
  return segments;
}

/** Magnitude of the Hann-windowed DFT of `segment` at frequency f (Hz), by Goertzel's recurrence. */
function magnitudeAt(segment: Float32Array, f: number): number {
  const n = segment.length;
  const coefficient = 2 * Math.cos((2 * Math.PI * f) / SAMPLE_RATE);
  const window = hann(n);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const s0 = segment[i]! * window[i]! + coefficient * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return Math.sqrt(Math.max(0, s1 * s1 + s2 * s2 - coefficient * s1 * s2));
}

const hannCache = new Map<number, Float64Array>();
function hann(n: number): Float64Array {
  let w = hannCache.get(n);
  if (!w) {
    w = Float64Array.from({ length: n }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1)));
    hannCache.set(n, w);
  }
  return w;
}

/** The fundamental: the lowest frequency (100-3500 Hz, 5 Hz grid) with at least a third of the peak magnitude. */
function fundamental(segment: Float32Array): number {
  const grid = Array.from({ length: 681 }, (_, i) => 100 + 5 * i);
  const magnitudes = grid.map((f) => magnitudeAt(segment, f));
  const peak = Math.max(...magnitudes);
  const first = magnitudes.findIndex((m) => m >= peak / 3);
  // Climb to the local maximum of that peak.
  let i = first;
  while (i + 1 < magnitudes.length && magnitudes[i + 1]! > magnitudes[i]!) i++;
  return grid[i]!;
}

const middle = (audio: Float32Array, [start, end]: [number, number], length = 2048) => {
  const center = Math.floor((start + end) / 2);
  const n = Math.min(length, end - start);
  return audio.subarray(center - Math.floor(n / 2), center - Math.floor(n / 2) + n);
};

const pitchOf = (f: number) => (f < 400 ? 'low' : f < 1300 ? 'middle' : 'high');

/** The answer a detector reads off the audio, or a note on why it could not. */
function detectAnswer(scene: ClipScene, audio: Float32Array): string {
  const segments = activeSegments(audio);
  switch (scene.type) {
    case 'beeps':
      return String(segments.length);
    case 'pitch':
      return pitchOf(fundamental(middle(audio, longest(segments))));
    case 'order': {
      if (segments.length !== 2) return `${segments.length} segments`;
      return pitchOf(fundamental(middle(audio, segments[0]!))) === 'low' ? 'low' : 'high';
    }
    case 'sweep': {
      const [start, end] = longest(segments);
      const quarter = Math.floor((end - start) / 4);
      const early = fundamental(audio.subarray(start, start + Math.min(quarter, 1024)));
      const late = fundamental(audio.subarray(end - Math.min(quarter, 1024), end));
      return late > early ? 'rising' : 'falling';
    }
    case 'loudness': {
      const [start, end] = longest(segments);
      const inner = audio.subarray(start + 320, end - 320); // away from the fades
      const db = 10 * Math.log10(inner.reduce((s, v) => s + v * v, 0) / inner.length);
      const bands = Object.entries(LOUDNESS_BANDS).map(([name, [low, high]]) => ({ name, distance: db < low ? low - db : db > high ? db - high : 0 }));
      return bands.sort((a, b) => a.distance - b.distance)[0]!.name;
    }
    case 'waveform': {
      const segment = middle(audio, longest(segments), 4096);
      const f0 = fundamental(segment);
      // Noise: no harmonic stands out of the spectrum around it.
      const around = [0.73, 1.37, 1.61].map((k) => magnitudeAt(segment, k * f0));
      const h1 = magnitudeAt(segment, f0);
      if (h1 < 4 * Math.max(...around)) return 'noise';
      const h2 = magnitudeAt(segment, 2 * f0) / h1;
      const h3 = magnitudeAt(segment, 3 * f0) / h1;
      if (h3 < 0.05) return 'sine';
      return h2 > 0.2 ? 'sawtooth' : 'square'; // sawtooth: 1/2, square: no even harmonics, 1/3 at the third
    }
    case 'digit':
      return segments.length >= 1 ? scene.answer : 'silent';
  }
}

function longest(segments: [number, number][]): [number, number] {
  if (segments.length === 0) throw new Error('no active segment in the clip');
  return segments.reduce((a, b) => (b[1] - b[0] > a[1] - a[0] ? b : a));
}

const speechAvailable = (() => {
  try {
    espeakAvailable();
    return true;
  } catch {
    return false;
  }
})();
const SYNTH_TYPES = QUESTION_TYPES.filter((t) => t !== 'digit');

describe('determinism', () => {
  it('gives the same scene, question and samples for the same (options, split, index), from a fresh instance', () => {
    const other = new SoundsDataset();
    for (const index of [0, 5, 123456789]) {
      const a = dataset.sample('test', index, { types: SYNTH_TYPES });
      const b = other.sample('test', index, { types: SYNTH_TYPES });
      expect(b.scene).toEqual(a.scene);
      expect(b.question).toEqual(a.question);
      expect(Buffer.from(b.audio.buffer).equals(Buffer.from(a.audio.buffer))).toBe(true);
    }
  });

  it('changes the clips with the seed, and never repeats a training clip among held-out ones', () => {
    const salted = new SoundsDataset({ seed: 9 });
    const same = Array.from({ length: 50 }, (_, i) => JSON.stringify(salted.scene('train', i)) === JSON.stringify(dataset.scene('train', i)));
    expect(same.filter(Boolean).length).toBe(0);
    const train = new Set(Array.from({ length: 2000 }, (_, i) => JSON.stringify(dataset.scene('train', i))));
    expect(train.size).toBe(2000);
    for (let i = 0; i < 500; i++) expect(train.has(JSON.stringify(dataset.scene('test', i)))).toBe(false);
  });
});

describe('balance and ranges', () => {
  const scenes = Array.from({ length: 7000 }, (_, i) => dataset.scene('train', i));

  it('draws question types and each type\'s answers about uniformly', () => {
    for (const type of QUESTION_TYPES) {
      const ofType = scenes.filter((s) => s.type === type);
      expect(ofType.length).toBeGreaterThan(1000 * 0.85);
      expect(ofType.length).toBeLessThan(1000 * 1.15);
      const answers = ANSWERS_BY_TYPE[type];
      for (const answer of answers) {
        const share = ofType.filter((s) => s.answer === answer).length / ofType.length;
        expect(Math.abs(share - 1 / answers.length)).toBeLessThan(0.35 / answers.length);
      }
    }
  });

  it('keeps clips 2-6 s long with every event inside, and spreads two or more beeps over the whole clip', () => {
    for (const scene of scenes) {
      expect(scene.duration).toBeGreaterThanOrEqual(2);
      expect(scene.duration).toBeLessThanOrEqual(6);
      for (const event of scene.events) {
        if (event.kind === 'speech') continue;
        expect(event.start).toBeGreaterThanOrEqual(0.09);
        expect(event.start + event.duration).toBeLessThanOrEqual(scene.duration - 0.09);
      }
      if (scene.type === 'beeps' && scene.events.length >= 2) {
        // The first beep sits in the first 1/n of the clip and the last in the last 1/n: any window of less than
        // (n - 1) / n of the clip misses one.
        const n = scene.events.length;
        const first = scene.events[0]!;
        const last = scene.events[n - 1]!;
        expect(first.kind === 'tone' && first.start + first.duration < scene.duration / n + 0.1).toBe(true);
        expect(last.kind === 'tone' && last.start > scene.duration - scene.duration / n - 0.1).toBe(true);
      }
    }
  });

  it('speaks held-out digits only in voices whose speaker variant no training voice has', () => {
    const trainVariants = new Set(VOICES.train.map((v) => v.variant));
    for (const split of ['validation', 'test'] as const) for (const voice of VOICES[split]) expect(trainVariants.has(voice.variant)).toBe(false);
    const testDigits = Array.from({ length: 400 }, (_, i) => dataset.scene('test', i)).filter((s) => s.type === 'digit');
    for (const scene of testDigits) {
      const event = scene.events[0]!;
      expect(event.kind === 'speech' && VOICES.test.includes(event.utterance.voice)).toBe(true);
    }
  });
});

describe('answers', () => {
  it.each(SYNTH_TYPES)('re-derives every %s answer from the audio alone (60 held-out clips)', (type: QuestionType) => {
    const wrong: string[] = [];
    for (let i = 0; i < 60; i++) {
      const { scene, audio } = dataset.sample('test', i, { types: [type] });
      expect(audio.length).toBe(Math.round(scene.duration * SAMPLE_RATE));
      expect(audio.every((v) => Number.isFinite(v) && Math.abs(v) <= 1)).toBe(true);
      const detected = detectAnswer(scene, audio);
      if (detected !== scene.answer) wrong.push(`clip ${i}: expected ${scene.answer}, detected ${detected}`);
    }
    expect(wrong).toEqual([]);
  });

  it.skipIf(!speechAvailable)('speaks digits with espeak-ng: one utterance per clip, distinct per digit and voice', () => {
    const clips = Array.from({ length: 30 }, (_, i) => dataset.sample('test', i, { types: ['digit'] }));
    for (const { scene, audio } of clips) {
      const segments = activeSegments(audio);
      expect(segments.length).toBeGreaterThanOrEqual(1);
      const span = segments.at(-1)![1] - segments[0]![0];
      expect(span / SAMPLE_RATE).toBeGreaterThan(0.2); // a word, not a click
      expect(span / SAMPLE_RATE).toBeLessThan(1.5);
      expect(detectAnswer(scene, audio)).toBe(scene.answer);
    }
    expect(new Set(clips.map((c) => c.question.answer)).size).toBeGreaterThan(5);
  });
});

describe('questions and vocabulary', () => {
  const vocabulary = new SoundVocabulary(['<pad>', '<bos>', '<audio>'], { padding: '<pad>' });

  it('encodes every question in one id per word and every answer as one token', () => {
    for (let i = 0; i < 300; i++) {
      const question = questionOf(dataset.scene('train', i));
      expect(question.text.endsWith('?')).toBe(true);
      expect(vocabulary.decode(vocabulary.encode(question.text))).toBe(question.text);
      expect(vocabulary.encode(question.answer)).toHaveLength(1);
      expect(ANSWERS_BY_TYPE[question.type]).toContain(question.answer);
    }
    expect(vocabulary.size).toBe(3 + WORDS.length);
    const text = 'which tone came first the high one or the low one?';
    expect(vocabulary.decode(vocabulary.encode(text))).toBe(text);
    expect(vocabulary.encode(text)).toHaveLength(questionWords(text).length);
    expect(() => vocabulary.encode('what colour is it?')).toThrow(/not a word of the sounds dataset/);
  });

  it('refuses invalid options with one error listing every problem', () => {
    expect(() => new SoundsDataset({ duration: { min: 1, max: 3 }, types: ['pitch', 'smell' as never], seed: -1 })).toThrow(
      /duration must satisfy[\s\S]*'smell' is unknown[\s\S]*seed must be/,
    );
  });
});
