// Sound synthesis into float PCM at 16 kHz: band-limited periodic waves by additive synthesis (a sum of the
// Fourier series' harmonics below Nyquist, so square and sawtooth waves do not alias into the spectrogram),
// exponential sweeps, white noise, and short raised-cosine fades so events start and end without clicks.
import type { SeededRandom } from '@chimera-examples/shapes-dataset';

export const SAMPLE_RATE = 16000;
const NYQUIST = SAMPLE_RATE / 2;

export type PeriodicWave = 'sine' | 'square' | 'sawtooth';

/** Fourier amplitudes of harmonic k (1-based) of each periodic wave (unit amplitude). */
function harmonicAmplitude(wave: PeriodicWave, k: number): number {
  switch (wave) {
    case 'sine':
      return k === 1 ? 1 : 0;
    case 'square':
      return k % 2 === 1 ? 4 / (Math.PI * k) : 0;
    case 'sawtooth':
      return ((k % 2 === 1 ? 1 : -1) * 2) / (Math.PI * k);
  }
}

/**
 * A periodic wave of instantaneous frequency `frequencyAt(t)` (Hz, t in seconds from the event start), n samples.
 * The phase is integrated sample by sample, so sweeps are continuous; harmonics above Nyquist are left out.
 */
export function periodic(wave: PeriodicWave, samples: number, frequencyAt: (t: number) => number): Float32Array {
  const out = new Float32Array(samples);
  let phase = 0;
  for (let i = 0; i < samples; i++) {
    const f = frequencyAt(i / SAMPLE_RATE);
    let value = 0;
    const top = Math.floor(NYQUIST / f);
    for (let k = 1; k <= top; k++) {
      const a = harmonicAmplitude(wave, k);
      if (a !== 0) value += a * Math.sin(k * phase);
    }
    out[i] = value;
    phase += (2 * Math.PI * f) / SAMPLE_RATE;
    if (phase > 2 * Math.PI) phase -= 2 * Math.PI;
  }
  return out;
}

/** White Gaussian noise (Box-Muller), unit variance. */
export function whiteNoise(samples: number, rng: SeededRandom): Float32Array {
  const out = new Float32Array(samples);
  for (let i = 0; i < samples; i += 2) {
    const u = 1 - rng.next(); // (0, 1]
    const v = rng.next();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < samples) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** Root mean square of a signal (0 for an empty one). */
export function rms(signal: Float32Array): number {
  if (signal.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < signal.length; i++) sum += signal[i]! * signal[i]!;
  return Math.sqrt(sum / signal.length);
}

export function dbToAmplitude(db: number): number {
  return 10 ** (db / 20);
}

/** Scales the signal in place to an RMS of `db` dBFS (a full-scale sine is -3 dBFS RMS) and fades both ends. */
export function shape(signal: Float32Array, db: number, fadeSeconds = 0.01): Float32Array {
  const level = rms(signal);
  if (level > 0) {
    const gain = dbToAmplitude(db) / level;
    for (let i = 0; i < signal.length; i++) signal[i]! *= gain;
  }
  const fade = Math.min(Math.floor(fadeSeconds * SAMPLE_RATE), Math.floor(signal.length / 2));
  for (let i = 0; i < fade; i++) {
    const w = 0.5 - 0.5 * Math.cos((Math.PI * (i + 0.5)) / fade);
    signal[i]! *= w;
    signal[signal.length - 1 - i]! *= w;
  }
  return signal;
}

/** Adds `source` into `target` starting at sample `offset` (clipped to the target). */
export function mixInto(target: Float32Array, source: Float32Array, offset: number): void {
  const end = Math.min(target.length, offset + source.length);
  for (let i = Math.max(0, offset); i < end; i++) target[i]! += source[i - offset]!;
}

/** Seconds to a whole number of samples. */
export function toSamples(seconds: number): number {
  return Math.round(seconds * SAMPLE_RATE);
}

/** Log-uniform in [low, high): pitch and frequency draws are even on a musical (log) scale. */
export function logUniform(rng: SeededRandom, low: number, high: number): number {
  return Math.exp(rng.uniform(Math.log(low), Math.log(high)));
}
