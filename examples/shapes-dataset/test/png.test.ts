import { describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { encodePng } from '../src/png';
import { ShapesDataset, drawText, imageGrid, textWidth, wrapText } from '../src/index';

describe('png and grids', () => {
  it('encodes RGB pixels losslessly', () => {
    const { image } = new ShapesDataset().sample('validation', 4);
    const decoded = PNG.sync.read(encodePng(image));
    expect([decoded.width, decoded.height]).toEqual([image.width, image.height]);
    for (let i = 0; i < image.width * image.height; i++) {
      expect([...decoded.data.slice(i * 4, i * 4 + 3)]).toEqual([...image.data.slice(i * 3, i * 3 + 3)]);
    }
  });

  it('lays out captioned tiles at the expected size with upscaled pixels', () => {
    const dataset = new ShapesDataset({ imageSize: 16, shapeSize: { min: 4, max: 10 } });
    const tiles = Array.from({ length: 5 }, (_, i) => ({ image: dataset.sample('train', i).image, caption: ['what shape is it?'] }));
    const grid = imageGrid(tiles, { columns: 3, scale: 2, padding: 4 });
    expect(grid.width).toBe(4 + 3 * (32 + 4));
    // 'what shape is it?' wraps to 2 lines of <= 5 chars at 32 px? No: 32 px holds 5 characters.
    const lines = wrapText('what shape is it?', 5);
    expect(lines).toEqual(['what', 'shape', 'is', 'it?']);
    expect(grid.height).toBe(4 + 2 * (32 + lines.length * 10 + 2 + 4));
    // Tile 4 (row 1, column 1), its pixel (3, 5), scaled by 2.
    const source = tiles[4]!.image;
    const from = (5 * 16 + 3) * 3;
    const to = ((4 + 32 + lines.length * 10 + 2 + 4 + 11) * grid.width + (4 + 36 + 7)) * 3;
    expect([...grid.data.slice(to, to + 3)]).toEqual([...source.data.slice(from, from + 3)]);
  });

  it('draws text ink inside its measured box only', () => {
    const image = { data: new Uint8Array(40 * 12 * 3), width: 40, height: 12 };
    drawText(image, 'hi 42?', 1, 2, [255, 0, 0]);
    let inkInside = 0;
    for (let y = 0; y < 12; y++) {
      for (let x = 0; x < 40; x++) {
        if (image.data[(y * 40 + x) * 3] === 0) continue;
        expect(x >= 1 && x < 1 + textWidth('hi 42?') && y >= 2 && y < 9).toBe(true);
        inkInside++;
      }
    }
    expect(inkInside).toBeGreaterThan(30);
  });
});
