// The named colour palette: well separated hues on a dark background, so a colour's name is never in doubt.

export const COLOR_NAMES = ['red', 'green', 'blue', 'yellow', 'purple', 'white'] as const;
export type ColorName = (typeof COLOR_NAMES)[number];

/** 8-bit RGB of each named colour (shapes get a small per-shape jitter around it). */
export const PALETTE: Readonly<Record<ColorName, readonly [number, number, number]>> = {
  red: [220, 45, 45],
  green: [45, 185, 70],
  blue: [60, 105, 245],
  yellow: [240, 215, 45],
  purple: [170, 75, 225],
  white: [235, 235, 235],
};

export function isColorName(value: unknown): value is ColorName {
  return typeof value === 'string' && (COLOR_NAMES as readonly string[]).includes(value);
}
