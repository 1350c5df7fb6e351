// The in-memory image type shared by decoding, preprocessing, patching and the vision plugin.

/** An 8-bit RGB image: row-major HWC, 3 bytes per pixel (`data.length === width * height * 3`). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** An 8-bit colour `[r, g, b]`, each 0..255: backgrounds for alpha, fills for padding. */
export type RgbColor = readonly [number, number, number];
