// Sliding windows (Audio Flamingo: 7 s windows, 5.25 s overlap, up to 16): the plan covers the clip with the fewest
// windows, only the last is short, the cut array pads it, seconds convert to frames, and bad settings or clips that
// need too many windows are clear errors (or truncated when asked).
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { AUDIO_FLAMINGO_WINDOWS, cutWindows, maxWindowedFrames, planWindows, windowsFromSeconds } from '../src/windows';

describe('planWindows', () => {
  it("Audio Flamingo's defaults: 700-frame windows every 175 frames, 16 at most (33.25 s)", () => {
    expect(windowsFromSeconds({ window: 7, overlap: 5.25, maxWindows: 16 })).toEqual({ ...AUDIO_FLAMINGO_WINDOWS, onOverflow: 'error' });
    expect(maxWindowedFrames(AUDIO_FLAMINGO_WINDOWS)).toBe(3325);
    const plan = planWindows(400, AUDIO_FLAMINGO_WINDOWS); // 4 s: one padded window
    expect(plan).toEqual({ window: 700, starts: [0], lengths: [400], coveredFrames: 400 });
    const six = planWindows(600 + 1, AUDIO_FLAMINGO_WINDOWS);
    expect(six.starts).toEqual([0]);
    const eight = planWindows(800, AUDIO_FLAMINGO_WINDOWS); // 8 s: a second window from 1.75 s
    expect(eight.starts).toEqual([0, 175]);
    expect(eight.lengths).toEqual([700, 625]);
    expect(planWindows(3325, AUDIO_FLAMINGO_WINDOWS).starts).toHaveLength(16);
  });

  it('property: windows cover the clip contiguously with the fewest windows; only the last is short', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 60 }), (frames, window, hopRaw) => {
        const hop = Math.min(hopRaw, window);
        const plan = planWindows(frames, { window, hop, maxWindows: 1000 });
        const n = plan.starts.length;
        expect(plan.starts[0]).toBe(0);
        plan.starts.forEach((s, i) => {
          expect(s).toBe(i * hop);
          expect(plan.lengths[i]).toBe(Math.min(window, frames - s));
          if (i < n - 1) expect(plan.lengths[i]).toBe(window);
        });
        expect(plan.starts[n - 1]! + plan.lengths[n - 1]!).toBe(frames); // reaches the end
        if (n > 1) expect(plan.starts[n - 2]! + window).toBeLessThan(frames); // one window fewer would not
        expect(plan.coveredFrames).toBe(frames);
      }),
      { numRuns: 300 },
    );
  });

  it('too many windows: a clear error, or the first maxWindows with onOverflow truncate', () => {
    expect(() => planWindows(3326, AUDIO_FLAMINGO_WINDOWS)).toThrow(
      /3326 mel frames \(33.26 s\) and needs 17 windows, more than maxWindows 16 \(which cover 3325 frames, 33.25 s\).*truncate/,
    );
    const cut = planWindows(5000, { ...AUDIO_FLAMINGO_WINDOWS, onOverflow: 'truncate' });
    expect(cut.starts).toHaveLength(16);
    expect(cut.coveredFrames).toBe(3325);
    expect(() => planWindows(0, AUDIO_FLAMINGO_WINDOWS)).toThrow(/at least one mel frame, got 0/);
    expect(() => planWindows(10, { window: 10, hop: 11, maxWindows: 2 })).toThrow(/hop \(11\) is larger than window \(10\)/);
    expect(() => planWindows(10, { window: 0, hop: 1, maxWindows: 2 })).toThrow(/window must be a positive integer, got 0/);
  });
});

describe('cutWindows', () => {
  it('copies each window and pads the last one', () => {
    const mels = 2;
    const frames = 5;
    const features = Float32Array.from({ length: frames * mels }, (_, i) => i + 1);
    const plan = planWindows(frames, { window: 3, hop: 2, maxWindows: 4 });
    expect(plan.starts).toEqual([0, 2]);
    const out = cutWindows(features, frames, mels, plan, -9);
    expect(Array.from(out)).toEqual([1, 2, 3, 4, 5, 6, 5, 6, 7, 8, 9, 10]);
    const short = planWindows(2, { window: 3, hop: 2, maxWindows: 4 });
    expect(Array.from(cutWindows(features.subarray(0, 4), 2, mels, short, -9))).toEqual([1, 2, 3, 4, -9, -9]);
    expect(() => cutWindows(features, 4, mels, plan)).toThrow(/4 frames of 2 mel bins need 8 values, got 10/);
  });
});
