// A clip's description (its "scene"): duration, background noise and sound events, drawn for one question type
// with the answer drawn first, and its rendering to 16 kHz float PCM. Frequency bands and levels have gaps
// between classes, so every answer is unambiguous in a log-mel spectrogram.
import { SeededRandom } from '@chimera-examples/shapes-dataset';
import {
  ANSWERS_BY_TYPE,
  type Direction,
  type Loudness,
  type Pitch,
  type QuestionType,
  type Waveform,
} from './questions';
import { SPEEDS, PITCHES_ESPEAK, speak, type Utterance, type Voice } from './speech';
import { SAMPLE_RATE, logUniform, mixInto, periodic, shape, toSamples, whiteNoise } from './synth';

/** Fundamental frequency bands (Hz) of the pitch classes, an octave or more apart. */
export const PITCH_BANDS: Readonly<Record<Pitch, readonly [number, number]>> = {
  low: [150, 300],
  middle: [500, 900],
  high: [1700, 3200],
};

/** RMS level bands (dBFS) of the loudness classes, 8 dB or more apart. */
export const LOUDNESS_BANDS: Readonly<Record<Loudness, readonly [number, number]>> = {
  quiet: [-44, -36],
  medium: [-28, -22],
  loud: [-14, -9],
};

/** The level of the main sound when loudness is not asked. */
export const DEFAULT_LEVEL: readonly [number, number] = [-28, -12];

export type SoundEvent =
  | { kind: 'tone'; start: number; duration: number; waveform: Waveform; frequency: number; db: number }
  | { kind: 'sweep'; start: number; duration: number; from: number; to: number; db: number }
  /** A spoken digit; `position` in [0, 1] places it between the clip's start and its end minus the speech length. */
  | { kind: 'speech'; position: number; utterance: Utterance; db: number };

export interface ClipScene {
  type: QuestionType;
  /** The answer to the clip's question (one of ANSWERS_BY_TYPE[type]). */
  answer: string;
  /** Seconds (a whole number of 10 ms frames). */
  duration: number;
  /** RMS level of the white background noise, dBFS. */
  noiseDb: number;
  events: SoundEvent[];
  /** For 'order': whether the question names the low tone first. */
  lowMentionedFirst?: boolean;
  /** Seed of the clip's noise (background and noise events). */
  noiseSeed: number;
}

export interface SceneSettings {
  /** Clip length range, seconds. */
  duration: { min: number; max: number };
  /** Voices of the split's spoken digits. */
  voices: readonly Voice[];
}

/** Seconds kept free at both ends of a clip. */
const MARGIN = 0.1;

/** Draws the clip for a question of `type`: the answer uniformly, then everything else. */
export function generateScene(type: QuestionType, rng: SeededRandom, settings: SceneSettings): ClipScene {
  const answer = rng.pick(ANSWERS_BY_TYPE[type]);
  const duration = Math.round(rng.uniform(settings.duration.min, settings.duration.max) * 100) / 100;
  const noiseDb = rng.uniform(-66, -56);
  const level = () => rng.uniform(DEFAULT_LEVEL[0], DEFAULT_LEVEL[1]);
  const place = (length: number) => round3(rng.uniform(MARGIN, duration - MARGIN - length));
  const events: SoundEvent[] = [];
  const scene: ClipScene = { type, answer, duration, noiseDb, events, noiseSeed: rng.nextUint32() };
  switch (type) {
    case 'pitch': {
      const length = round3(rng.uniform(0.6, 1.5));
      const waveform = rng.pick(['sine', 'square', 'sawtooth'] as const);
      const [low, high] = PITCH_BANDS[answer as Pitch];
      events.push({ kind: 'tone', start: place(length), duration: length, waveform, frequency: logUniform(rng, low, high), db: level() });
      break;
    }
    case 'waveform': {
      const length = round3(rng.uniform(0.6, 1.5));
      events.push({ kind: 'tone', start: place(length), duration: length, waveform: answer as Waveform, frequency: logUniform(rng, 250, 600), db: level() });
      break;
    }
    case 'loudness': {
      const length = round3(rng.uniform(0.8, 1.8));
      const waveform = rng.pick(['sine', 'square', 'sawtooth', 'noise'] as const);
      const [low, high] = LOUDNESS_BANDS[answer as Loudness];
      events.push({ kind: 'tone', start: place(length), duration: length, waveform, frequency: logUniform(rng, 200, 1500), db: rng.uniform(low, high) });
      break;
    }
    case 'sweep': {
      const length = round3(rng.uniform(0.6, 1.6));
      const bottom = logUniform(rng, 200, 500);
      const top = bottom * logUniform(rng, 4, 8); // two to three octaves
      const rising = (answer as Direction) === 'rising';
      events.push({ kind: 'sweep', start: place(length), duration: length, from: rising ? bottom : top, to: rising ? top : bottom, db: level() });
      break;
    }
    case 'beeps': {
      // Beeps spread evenly over the clip (jittered), so with two or more every part of the clip holds one.
      const count = Number(answer);
      const frequency = logUniform(rng, 700, 1600);
      const db = level();
      const slot = (duration - 2 * MARGIN) / count;
      for (let i = 0; i < count; i++) {
        const length = round3(rng.uniform(0.08, 0.15));
        const jitter = count === 1 ? (slot - length) / 2 : Math.min(0.25 * slot, (slot - length) / 2 - 0.05);
        const center = MARGIN + (i + 0.5) * slot + rng.uniform(-jitter, jitter);
        events.push({ kind: 'tone', start: round3(center - length / 2), duration: length, waveform: 'sine', frequency, db });
      }
      break;
    }
    case 'order': {
      // At most 1.8 s of tones and gap, so the pair fits the shortest (2 s) clip.
      const lengths = [round3(rng.uniform(0.3, 0.6)), round3(rng.uniform(0.3, 0.6))];
      const gap = rng.uniform(0.3, 0.6);
      const room = duration - 2 * MARGIN - lengths[0]! - lengths[1]! - gap;
      const first = round3(MARGIN + rng.uniform(0, Math.max(0, room) * 0.5));
      const second = round3(first + lengths[0]! + gap + rng.uniform(0, Math.max(0, room - (first - MARGIN))));
      const lowFirst = answer === 'low';
      const tone = (pitch: Pitch, start: number, length: number): SoundEvent => ({
        kind: 'tone',
        start,
        duration: length,
        waveform: rng.pick(['sine', 'square', 'sawtooth'] as const),
        frequency: logUniform(rng, PITCH_BANDS[pitch][0], PITCH_BANDS[pitch][1]),
        db: level(),
      });
      events.push(tone(lowFirst ? 'low' : 'high', first, lengths[0]!), tone(lowFirst ? 'high' : 'low', second, lengths[1]!));
      scene.lowMentionedFirst = rng.chance(0.5);
      break;
    }
    case 'digit': {
      const utterance: Utterance = { digit: Number(answer), voice: rng.pick(settings.voices), speed: rng.pick(SPEEDS), pitch: rng.pick(PITCHES_ESPEAK) };
      events.push({ kind: 'speech', position: rng.next(), utterance, db: level() });
      break;
    }
  }
  return scene;
}

/** The clip as 16 kHz float PCM in [-1, 1] (clipped), `duration * 16000` samples. */
export function renderScene(scene: ClipScene, speechCache: string): Float32Array {
  const rng = new SeededRandom(scene.noiseSeed);
  const audio = whiteNoise(Math.round(scene.duration * SAMPLE_RATE), rng);
  shape(audio, scene.noiseDb, 0);
  for (const event of scene.events) {
    if (event.kind === 'speech') {
      const speech = speak(event.utterance, speechCache);
      const copy = shape(Float32Array.from(speech), event.db, 0.005);
      const latest = Math.max(0, audio.length - toSamples(MARGIN) - copy.length);
      const earliest = Math.min(latest, toSamples(MARGIN));
      mixInto(audio, copy, earliest + Math.round(event.position * (latest - earliest)));
      continue;
    }
    const samples = toSamples(event.duration);
    let signal: Float32Array;
    if (event.kind === 'sweep') {
      // Exponential sweep: the frequency moves by a constant number of octaves per second.
      const ratio = event.to / event.from;
      signal = periodic('sine', samples, (t) => event.from * ratio ** (t / event.duration));
    } else if (event.waveform === 'noise') {
      signal = whiteNoise(samples, rng);
    } else {
      signal = periodic(event.waveform, samples, () => event.frequency);
    }
    mixInto(audio, shape(signal, event.db, event.duration < 0.2 ? 0.005 : 0.01), toSamples(event.start));
  }
  for (let i = 0; i < audio.length; i++) audio[i] = Math.max(-1, Math.min(1, audio[i]!));
  return audio;
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
