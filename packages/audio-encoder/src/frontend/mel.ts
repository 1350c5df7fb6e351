/**
 * The Slaney mel filterbank, as torchaudio.functional.melscale_fbanks(norm='slaney', mel_scale='slaney') builds it
 * (and librosa's `filters.mel`, which Whisper's `mel_filters.npz` holds): the Slaney scale is linear below
 * 1 kHz (200/3 Hz per mel) and logarithmic above (27 mels per factor 6.4); n_mels + 2 points evenly spaced in mel
 * from f_min to f_max; triangles between neighbours over the FFT bin frequencies linspace(0, sr // 2, n_freqs);
 * area normalisation 2 / (f[i + 2] - f[i]).
 *
 * Computed in float64 and stored as float32, as librosa builds Whisper's shipped `mel_filters.npz` and as HF's
 * numpy `mel_filter_bank` does. torchaudio builds the same bank in float32 by default, and that rounding is not
 * harmless: a filter edge can fall within 0.1 Hz of an FFT bin (128 bins: 3439.92 Hz against bin 86 at
 * 3440 Hz), where the edge weight is a difference of nearly equal numbers (float32 gives 1.133e-5, exact
 * arithmetic 1.120e-5), and a strong tone in that bin moves the log-mel by 2e-4. The parity tests therefore
 * compare with torchaudio's bank computed in float64.
 */

const F_SP = 200 / 3;
const MIN_LOG_HZ = 1000;
const MIN_LOG_MEL = MIN_LOG_HZ / F_SP;
const LOG_STEP = Math.log(6.4) / 27;

/** Hz to mel on the Slaney scale. */
export function hzToMel(hz: number): number {
  return hz >= MIN_LOG_HZ ? MIN_LOG_MEL + Math.log(hz / MIN_LOG_HZ) / LOG_STEP : hz / F_SP;
}

/** Mel to Hz on the Slaney scale. */
export function melToHz(mel: number): number {
  return mel >= MIN_LOG_MEL ? MIN_LOG_HZ * Math.exp(LOG_STEP * (mel - MIN_LOG_MEL)) : F_SP * mel;
}

/** Options of {@link melFilterBank} (Slaney scale and normalisation, as Whisper's filters). */
export interface MelFilterBankOptions {
  /** Number of FFT bins, n_fft / 2 + 1 (Whisper: 201). */
  nFreqs: number;
  /** Mel bins. */
  nMels: number;
  /** Sample rate of the signal (Hz). */
  sampleRate: number;
  /** Lowest frequency in Hz (default 0). */
  fMin?: number;
  /** Default sampleRate / 2. */
  fMax?: number;
}

/** The filterbank as a row-major [nFreqs, nMels] Float32Array (torchaudio's layout: spectrum @ fb). */
export function melFilterBank({ nFreqs, nMels, sampleRate, fMin = 0, fMax = sampleRate / 2 }: MelFilterBankOptions): Float32Array {
  if (!(Number.isInteger(nFreqs) && nFreqs >= 2 && Number.isInteger(nMels) && nMels >= 1 && fMax > fMin && fMin >= 0)) {
    throw new Error(`melFilterBank: expected integers nFreqs >= 2, nMels >= 1 and 0 <= fMin < fMax, got nFreqs ${nFreqs}, nMels ${nMels}, fMin ${fMin}, fMax ${fMax}`);
  }
  const top = Math.floor(sampleRate / 2);
  const freqs = Array.from({ length: nFreqs }, (_, i) => (top * i) / (nFreqs - 1));
  const mMin = hzToMel(fMin);
  const mMax = hzToMel(fMax);
  const points = Array.from({ length: nMels + 2 }, (_, i) => melToHz(mMin + ((mMax - mMin) * i) / (nMels + 1)));
  const fb = new Float32Array(nFreqs * nMels);
  for (let m = 0; m < nMels; m++) {
    const lo = points[m]!;
    const mid = points[m + 1]!;
    const hi = points[m + 2]!;
    const enorm = 2 / (hi - lo);
    for (let f = 0; f < nFreqs; f++) {
      const down = (freqs[f]! - lo) / (mid - lo);
      const up = (hi - freqs[f]!) / (hi - mid);
      fb[f * nMels + m] = Math.max(0, Math.min(down, up)) * enorm;
    }
  }
  return fb;
}
