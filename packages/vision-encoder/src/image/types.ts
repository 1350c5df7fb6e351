// The in-memory image type shared by decoding, preprocessing, patching and the vision plugin.

/** An 8-bit RGB image: row-major HWC, 3 bytes per pixel (`data.length === width * height * 3`). */
export interface RgbImage {
  /** The pixels, row-major, 3 bytes (R, G, B) per pixel. */
  data: Uint8Array;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

/** An 8-bit colour `[r, g, b]`, each 0..255: backgrounds for alpha, fills for padding. */
export type RgbColor = readonly [number, number, number];
