/**
 * Band-limited resampling that reproduces torchaudio.functional.resample (default method: windowed sinc with a
 * Hann window, lowpass_filter_width 6, rolloff 0.99), facts from torchaudio's `_get_sinc_resample_kernel` and
 * `_apply_sinc_resample_kernel`: the rates are divided by their gcd (orig -> new); the filter's cutoff is
 * min(orig, new) * rolloff; each of the `new` output phases has a kernel over 2 * width + orig input samples,
 * width = ceil(lowpass_filter_width * orig / cutoff); the input is zero-padded by width on the left and
 * width + orig on the right and the kernels step by orig samples; the output has ceil(new * length / orig) samples.
 *
 * torchaudio applies the kernel bank as one strided conv1d whose rows are mostly zeros: the sinc is clamped to
 * +-lowpass_filter_width, so only about 2 * width + 1 of each row's 2 * width + orig taps are non-zero (35 of 475
 * for 44.1 -> 16 kHz). Here each phase keeps only its non-zero band (a polyphase filter), and the sums run in
 * float64: 44.1 kHz -> 16 kHz costs 35 multiply-adds per output sample, 13x fewer than the dense bank as a matmul.
 */
import { AudioInputError } from './errors';

/** Options of {@link resample} (torchaudio's sinc_interp_hann parameters). */
export interface ResampleOptions {
  /** Zero crossings of the sinc on each side (torchaudio's lowpass_filter_width; default 6). */
  lowpassFilterWidth?: number;
  /** Cutoff as a fraction of the lower Nyquist rate (torchaudio's rolloff; default 0.99). */
  rolloff?: number;
}

/** Largest kernel bank (phases x taps) built; coprime rates like 44099 -> 16000 still fit well under it. */
const MAX_BANK = 2 ** 24;

interface Bank {
  orig: number;
  next: number;
  width: number;
  /** First tap index of each phase's band within the 2 * width + orig kernel. */
  starts: Int32Array;
  /** Each phase's non-zero taps, concatenated; phase j is taps[offsets[j] .. offsets[j + 1]). */
  taps: Float64Array;
  offsets: Int32Array;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const banks = new Map<string, Bank>();

function kernelBank(fromRate: number, toRate: number, lpw: number, rolloff: number): Bank {
  const key = `${fromRate}:${toRate}:${lpw}:${rolloff}`;
  const cached = banks.get(key);
  if (cached) return cached;
  const g = gcd(fromRate, toRate);
  const orig = fromRate / g;
  const next = toRate / g;
  const base = Math.min(orig, next) * rolloff;
  const width = Math.ceil((lpw * orig) / base);
  const size = 2 * width + orig;
  const scale = base / orig;
  const starts = new Int32Array(next);
  const offsets = new Int32Array(next + 1);
  const bands: number[][] = [];
  let total = 0;
  for (let j = 0; j < next; j++) {
    // t(k) = (-j / next + (k - width) / orig) * base, in units of the filter's zero crossings.
    const band: number[] = [];
    let start = -1;
    for (let k = 0; k < size; k++) {
      const t = (-j / next + (k - width) / orig) * base;
      if (t <= -lpw || t >= lpw) {
        if (start >= 0) break; // past the band: the rest of the row is clamped to (numerically) zero
        continue;
      }
      if (start < 0) start = k;
      const window = Math.cos((t * Math.PI) / lpw / 2) ** 2;
      const x = t * Math.PI;
      band.push((x === 0 ? 1 : Math.sin(x) / x) * window * scale);
    }
    starts[j] = Math.max(start, 0);
    bands.push(band);
    total += band.length;
    if (total > MAX_BANK) {
      throw new AudioInputError('too-large', `resampling ${fromRate} -> ${toRate} Hz needs a kernel bank over ${MAX_BANK} taps (the rates reduce to ${orig}:${next}); resample through a rate with a larger common factor`);
    }
    offsets[j + 1] = total;
  }
  const taps = new Float64Array(total);
  bands.forEach((band, j) => taps.set(band, offsets[j]!));
  const bank = { orig, next, width, starts, taps, offsets };
  if (banks.size > 32) banks.clear();
  banks.set(key, bank);
  return bank;
}

/**
 * Resamples mono samples from `fromRate` to `toRate` (integers, Hz) exactly as torchaudio.functional.resample
 * does with its defaults (within float32 rounding: the sums here run in float64). Equal rates return a copy.
 */
export function resample(samples: Float32Array, fromRate: number, toRate: number, options: ResampleOptions = {}): Float32Array {
  for (const [name, rate] of [['fromRate', fromRate], ['toRate', toRate]] as const) {
    if (!Number.isInteger(rate) || rate <= 0) {
      throw new AudioInputError('bad-sample-rate', `resample: ${name} must be a positive integer number of Hz, got ${rate}`);
    }
  }
  if (!(samples instanceof Float32Array)) {
    throw new AudioInputError('bad-samples', `resample: expected a Float32Array of samples, got ${typeof samples}`);
  }
  const lpw = options.lowpassFilterWidth ?? 6;
  const rolloff = options.rolloff ?? 0.99;
  if (!(lpw > 0) || !(rolloff > 0 && rolloff <= 1)) {
    throw new AudioInputError('bad-sample-rate', `resample: expected lowpassFilterWidth > 0 and 0 < rolloff <= 1, got ${lpw} and ${rolloff}`);
  }
  if (fromRate === toRate) return Float32Array.from(samples);
  const { orig, next, width, starts, taps, offsets } = kernelBank(fromRate, toRate, lpw, rolloff);
  const length = samples.length;
  const padded = new Float64Array(length + 2 * width + orig); // float64: no conversion in the inner loop (1.3x)
  padded.set(samples, width);
  const outLength = Math.ceil((next * length) / orig);
  const out = new Float32Array(outLength);
  const blocks = Math.ceil(outLength / next);
  for (let i = 0; i < blocks; i++) {
    const base = i * orig;
    const firstOut = i * next;
    const phases = Math.min(next, outLength - firstOut);
    for (let j = 0; j < phases; j++) {
      // Four partial sums: V8 keeps them in registers, and the adds no longer wait on each other.
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      let p = base + starts[j]!;
      let q = offsets[j]!;
      const end = offsets[j + 1]!;
      for (; q + 3 < end; q += 4, p += 4) {
        a0 += taps[q]! * padded[p]!;
        a1 += taps[q + 1]! * padded[p + 1]!;
        a2 += taps[q + 2]! * padded[p + 2]!;
        a3 += taps[q + 3]! * padded[p + 3]!;
      }
      for (; q < end; q++, p++) a0 += taps[q]! * padded[p]!;
      out[firstOut + j] = a0 + a1 + (a2 + a3);
    }
  }
  return out;
}
