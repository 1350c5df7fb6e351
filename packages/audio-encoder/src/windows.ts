/**
 * Sliding windows over a clip's mel frames, as Audio Flamingo does (Kong et al. 2024, "Audio Flamingo: A Novel
 * Audio Language Model with Few-Shot Learning and Dialogue Abilities": 7 s windows with 5.25 s overlap, up to 16
 * windows, each encoded separately). Sizes are in mel frames at Whisper's 100 frames/s (hop 160 at 16 kHz), before
 * conv2's stride 2.
 *
 * Windows start at 0, hop, 2 hop, ... until one reaches the clip's end: n = 1 + ceil(max(0, T - window) / hop).
 * The last window (and a clip shorter than one window) is padded to the window size and its padding masked: the
 * encoder zeroes and masks frames past `lengths[i]`, and only its valid positions become tokens.
 */

/** Window geometry in mel frames. */
export interface WindowOptions {
  /** Frames per window (Audio Flamingo: 700 = 7 s). */
  window: number;
  /** Frames between window starts (Audio Flamingo: 175 = 7 s - 5.25 s overlap). */
  hop: number;
  /** Most windows per clip (Audio Flamingo: 16, i.e. 33.25 s). */
  maxWindows: number;
  /** A clip needing more windows: 'error' (default) or keep the first maxWindows and drop the rest. */
  onOverflow?: 'error' | 'truncate';
}

/** Whisper's frame rate: 16 kHz audio, hop 160. */
export const FRAMES_PER_SECOND = 100;

/** Audio Flamingo's windows: 7 s, 5.25 s overlap (1.75 s hop), up to 16. */
export const AUDIO_FLAMINGO_WINDOWS: Readonly<WindowOptions> = Object.freeze({ window: 700, hop: 175, maxWindows: 16 });

/** Window options from seconds: `windowsFromSeconds({ window: 7, overlap: 5.25, maxWindows: 16 })`. */
export function windowsFromSeconds(options: {
  window: number;
  overlap: number;
  maxWindows: number;
  onOverflow?: 'error' | 'truncate';
  framesPerSecond?: number;
}): WindowOptions {
  const rate = options.framesPerSecond ?? FRAMES_PER_SECOND;
  const window = Math.round(options.window * rate);
  const hop = Math.round((options.window - options.overlap) * rate);
  return validateWindows({ window, hop, maxWindows: options.maxWindows, onOverflow: options.onOverflow });
}

/** Where each window of a clip starts and how many of its frames are real (the rest is padding). */
export interface WindowPlan {
  /** Frames per window (every window is padded to it). */
  readonly window: number;
  /** Start frame of each window. */
  readonly starts: readonly number[];
  /** Valid frames of each window (window, except the last when it runs past the clip). */
  readonly lengths: readonly number[];
  /** Frames of the clip the windows cover (less than the clip only with onOverflow 'truncate'). */
  readonly coveredFrames: number;
}

/** Checks window options (positive integers, hop within the window) and returns them; throws naming every problem. */
export function validateWindows(options: WindowOptions): WindowOptions {
  const problems: string[] = [];
  const positiveInt = (key: 'window' | 'hop' | 'maxWindows') => {
    const v = options[key];
    if (!(typeof v === 'number' && Number.isInteger(v) && v > 0)) problems.push(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
  };
  positiveInt('window');
  positiveInt('hop');
  positiveInt('maxWindows');
  if (problems.length === 0 && options.hop > options.window) {
    problems.push(`hop (${options.hop}) is larger than window (${options.window}), so frames between windows would be skipped; lower hop`);
  }
  const overflow = options.onOverflow ?? 'error';
  if (overflow !== 'error' && overflow !== 'truncate') problems.push(`onOverflow must be 'error' or 'truncate', got ${JSON.stringify(overflow)}`);
  if (problems.length) throw new Error(`audio windows are invalid (sizes in mel frames, 100 per second):\n  ${problems.join('\n  ')}`);
  return { window: options.window, hop: options.hop, maxWindows: options.maxWindows, onOverflow: overflow };
}

/** Most frames `options` can cover: window + (maxWindows - 1) * hop. */
export function maxWindowedFrames(options: WindowOptions): number {
  return options.window + (options.maxWindows - 1) * options.hop;
}

/** The windows of a clip of `frames` mel frames (see the file comment). */
export function planWindows(frames: number, options: WindowOptions): WindowPlan {
  const { window, hop, maxWindows, onOverflow } = validateWindows(options);
  if (!Number.isInteger(frames) || frames < 1) {
    throw new Error(`planWindows: a clip needs at least one mel frame, got ${frames}; check that the audio is not empty`);
  }
  let count = 1 + Math.ceil(Math.max(0, frames - window) / hop);
  if (count > maxWindows) {
    const limit = maxWindowedFrames(options);
    if (onOverflow !== 'truncate') {
      throw new Error(
        `planWindows: the clip has ${frames} mel frames (${frames / FRAMES_PER_SECOND} s) and needs ${count} windows, ` +
          `more than maxWindows ${maxWindows} (which cover ${limit} frames, ${limit / FRAMES_PER_SECOND} s); trim the clip, ` +
          "raise maxWindows, or pass onOverflow: 'truncate' to keep the first windows",
      );
    }
    count = maxWindows;
  }
  const starts = Array.from({ length: count }, (_, i) => i * hop);
  const lengths = starts.map((s) => Math.min(window, frames - s));
  return { window, starts, lengths, coveredFrames: Math.min(frames, starts[count - 1]! + window) };
}

/**
 * The windows' frames as one [windows, window, melBins] array (row-major), the padding filled with `padValue`.
 * `features` is [frames, melBins].
 */
export function cutWindows(features: Float32Array, frames: number, melBins: number, plan: WindowPlan, padValue = 0): Float32Array {
  if (features.length !== frames * melBins) {
    throw new Error(`cutWindows: ${frames} frames of ${melBins} mel bins need ${frames * melBins} values, got ${features.length}`);
  }
  const size = plan.window * melBins;
  const out = new Float32Array(plan.starts.length * size);
  if (padValue !== 0) out.fill(padValue);
  plan.starts.forEach((start, i) => {
    out.set(features.subarray(start * melBins, (start + plan.lengths[i]!) * melBins), i * size);
  });
  return out;
}
