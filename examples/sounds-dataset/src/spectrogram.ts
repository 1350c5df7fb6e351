// Draws a (log-mel) spectrogram as an RGB image, time left to right and low frequencies at the bottom, with a
// viridis-like colour map, so shapes-dataset's imageGrid can caption it and its PNG writer can save it.

export interface SpectrogramImageOptions {
  /** Value drawn darkest and brightest (default: the values' min and max). */
  low?: number;
  high?: number;
  /** Layout of `values`: 'frames-bins' ([T, F] row-major, channels last; default) or 'bins-frames' ([F, T]). */
  layout?: 'frames-bins' | 'bins-frames';
}

/** Anchor colours of the map (viridis at 0, 0.25, 0.5, 0.75, 1). */
const STOPS: readonly (readonly [number, number, number])[] = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

export function spectrogramImage(
  values: ArrayLike<number>,
  frames: number,
  bins: number,
  options: SpectrogramImageOptions = {},
): { data: Uint8Array; width: number; height: number } {
  if (!(Number.isInteger(frames) && frames >= 1 && Number.isInteger(bins) && bins >= 1) || values.length !== frames * bins) {
    throw new Error(`spectrogramImage: expected frames * bins = ${frames} * ${bins} values, got ${values.length}`);
  }
  let low = options.low ?? Infinity;
  let high = options.high ?? -Infinity;
  if (options.low === undefined || options.high === undefined) {
    for (let i = 0; i < values.length; i++) {
      if (options.low === undefined) low = Math.min(low, values[i]!);
      if (options.high === undefined) high = Math.max(high, values[i]!);
    }
  }
  const span = high > low ? high - low : 1;
  const binsFirst = options.layout === 'bins-frames';
  const data = new Uint8Array(frames * bins * 3);
  for (let t = 0; t < frames; t++) {
    for (let f = 0; f < bins; f++) {
      const value = values[binsFirst ? f * frames + t : t * bins + f]!;
      const x = Math.min(1, Math.max(0, (value - low) / span)) * (STOPS.length - 1);
      const k = Math.min(STOPS.length - 2, Math.floor(x));
      const w = x - k;
      const out = ((bins - 1 - f) * frames + t) * 3; // row 0 is the highest bin
      for (let c = 0; c < 3; c++) data[out + c] = Math.round(STOPS[k]![c]! * (1 - w) + STOPS[k + 1]![c]! * w);
    }
  }
  return { data, width: frames, height: bins };
}
