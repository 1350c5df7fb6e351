// A 5x7 bitmap font (upper-case glyphs for letters, digits, common punctuation) to caption sample grids, so a
// person can read each image's question and answers in the PNG itself.
import type { RgbImage } from '@chimera/vision-encoder';

export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 7;
/** Horizontal advance per character, glyph plus one column of spacing. */
export const GLYPH_ADVANCE = GLYPH_WIDTH + 1;

// Each glyph: 7 rows of 5 columns, '#' = ink.
const GLYPHS: Record<string, string> = {
  a: '.###. #...# #...# ##### #...# #...# #...#',
  b: '####. #...# #...# ####. #...# #...# ####.',
  c: '.###. #...# #.... #.... #.... #...# .###.',
  d: '####. #...# #...# #...# #...# #...# ####.',
  e: '##### #.... #.... ####. #.... #.... #####',
  f: '##### #.... #.... ####. #.... #.... #....',
  g: '.###. #...# #.... #.### #...# #...# .####',
  h: '#...# #...# #...# ##### #...# #...# #...#',
  i: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  j: '..### ...#. ...#. ...#. ...#. #..#. .##..',
  k: '#...# #..#. #.#.. ##... #.#.. #..#. #...#',
  l: '#.... #.... #.... #.... #.... #.... #####',
  m: '#...# ##.## #.#.# #.#.# #...# #...# #...#',
  n: '#...# #...# ##..# #.#.# #..## #...# #...#',
  o: '.###. #...# #...# #...# #...# #...# .###.',
  p: '####. #...# #...# ####. #.... #.... #....',
  q: '.###. #...# #...# #...# #.#.# #..#. .##.#',
  r: '####. #...# #...# ####. #.#.. #..#. #...#',
  s: '.#### #.... #.... .###. ....# ....# ####.',
  t: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  u: '#...# #...# #...# #...# #...# #...# .###.',
  v: '#...# #...# #...# #...# #...# .#.#. ..#..',
  w: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.',
  x: '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
  y: '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..',
  z: '##### ....# ...#. ..#.. .#... #.... #####',
  '0': '.###. #...# #..## #.#.# ##..# #...# .###.',
  '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  '2': '.###. #...# ....# ...#. ..#.. .#... #####',
  '3': '####. ....# ....# .###. ....# ....# ####.',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
  '5': '##### #.... ####. ....# ....# #...# .###.',
  '6': '.###. #.... #.... ####. #...# #...# .###.',
  '7': '##### ....# ...#. ..#.. .#... .#... .#...',
  '8': '.###. #...# #...# .###. #...# #...# .###.',
  '9': '.###. #...# #...# .#### ....# ....# .###.',
  '?': '.###. #...# ....# ...#. ..#.. ..... ..#..',
  '!': '..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..',
  '.': '..... ..... ..... ..... ..... ..... ..#..',
  ',': '..... ..... ..... ..... ..... ..#.. .#...',
  ':': '..... ..#.. ..... ..... ..... ..#.. .....',
  '-': '..... ..... ..... .###. ..... ..... .....',
  '_': '..... ..... ..... ..... ..... ..... #####',
  '/': '....# ....# ...#. ..#.. .#... #.... #....',
  '%': '##..# ##..# ...#. ..#.. .#... #..## #..##',
  '(': '...#. ..#.. .#... .#... .#... ..#.. ...#.',
  ')': '.#... ..#.. ...#. ...#. ...#. ..#.. .#...',
  '=': '..... ..... ##### ..... ##### ..... .....',
  '+': '..... ..#.. ..#.. ##### ..#.. ..#.. .....',
  "'": '..#.. ..#.. ..... ..... ..... ..... .....',
  ' ': '..... ..... ..... ..... ..... ..... .....',
};
// Anything else is drawn as a hollow box, so a missing glyph is visible rather than silently dropped.
const UNKNOWN = '##### #...# #...# #...# #...# #...# #####';

const BITMAPS = new Map<string, boolean[][]>(
  Object.entries({ ...GLYPHS, '\u0000': UNKNOWN }).map(([ch, rows]) => [ch, rows.split(' ').map((row) => [...row].map((c) => c === '#'))]),
);

/** Pixel width of a line of text at this scale. */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * GLYPH_ADVANCE - 1) * scale;
}

/** Draws one line of text into the image in place, top-left at (x, y); ink outside the image is clipped. */
export function drawText(image: RgbImage, text: string, x: number, y: number, rgb: readonly [number, number, number], scale = 1): void {
  if (!(Number.isInteger(scale) && scale >= 1)) throw new Error(`drawText: scale must be a positive integer, got ${scale}`);
  [...text.toLowerCase()].forEach((ch, n) => {
    const bitmap = BITMAPS.get(ch) ?? BITMAPS.get('\u0000')!;
    const left = x + n * GLYPH_ADVANCE * scale;
    bitmap.forEach((row, gy) =>
      row.forEach((ink, gx) => {
        if (!ink) return;
        for (let dy = 0; dy < scale; dy++) {
          for (let dx = 0; dx < scale; dx++) setPixel(image, left + gx * scale + dx, y + gy * scale + dy, rgb);
        }
      }),
    );
  });
}

/** Splits text into lines of at most `maxChars` characters at spaces (a longer word is cut). */
export function wrapText(text: string, maxChars: number): string[] {
  if (!(Number.isInteger(maxChars) && maxChars >= 1)) throw new Error(`wrapText: maxChars must be a positive integer, got ${maxChars}`);
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    let rest = word;
    while (rest.length > maxChars) {
      if (line) lines.push(line);
      lines.push(rest.slice(0, maxChars));
      rest = rest.slice(maxChars);
      line = '';
    }
    if (!line) line = rest;
    else if (line.length + 1 + rest.length <= maxChars) line += ` ${rest}`;
    else {
      lines.push(line);
      line = rest;
    }
  }
  if (line) lines.push(line);
  return lines;
}

function setPixel(image: RgbImage, x: number, y: number, rgb: readonly [number, number, number]): void {
  if (x < 0 || y < 0 || x >= image.width || y >= image.height) return;
  const at = (y * image.width + x) * 3;
  image.data[at] = rgb[0];
  image.data[at + 1] = rgb[1];
  image.data[at + 2] = rgb[2];
}
