import { describe, expect, it } from 'vitest';
import { VisionTransformer, tinyViT, visionModality, type PreparedImage } from '@chimera/vision-encoder';
import { COLOR_NAMES, SHAPE_KINDS, ShapesDataset, fineDetailOptions, type Scene, type SceneShape } from '@chimera-examples/shapes-dataset';
import { imageViews, viewPatchLabels, type View } from '../src';

const shape = (kind: SceneShape['kind'], color: SceneShape['color'], x0: number, y0: number, side: number): SceneShape => ({
  kind,
  color,
  rgb: [0, 0, 0],
  size: side,
  sizeClass: side > 11 ? 'large' : 'small',
  center: { x: x0 + side / 2, y: y0 + side / 2 },
  bbox: { x0, y0, x1: x0 + side, y1: y0 + side },
});

// 64x48: a 12-pixel red square at (10, 10) and an 8-pixel blue star at (44, 30).
const scene: Scene = {
  width: 64,
  height: 48,
  background: { rgb: [0, 0, 0], noise: 0, noiseSeed: 0 },
  antialias: 1,
  shapes: [shape('square', 'red', 10, 10, 12), shape('star', 'blue', 44, 30, 8)],
};
const kinds = SHAPE_KINDS;
const squareKind = kinds.indexOf('square') + 1;
const starKind = kinds.indexOf('star') + 1;
const labelled = (labels: Int32Array) => [...labels].flatMap((l, i) => (l ? [[i, l]] : []));

describe('patch labels of a view', () => {
  it('whole image at native size: the patches whose centres fall in each box', () => {
    const view: View = { kind: 'whole', region: { x0: 0, y0: 0, x1: 64, y1: 48 }, width: 64, height: 48 };
    const labels = viewPatchLabels(scene, view, kinds, 8); // 6 rows x 8 cols; centres at 4, 12, 20, ...
    expect(labels.kind).toHaveLength(48);
    // square [10, 22): patch centres 12 and 20 on both axes -> rows 1-2, cols 1-2. Star [44, 52) x [30, 38): the
    // centre (44, 36) of patch (4, 5), and patch (4, 6) holding the star's centre (48, 34).
    expect(labelled(labels.kind)).toEqual([
      [9, squareKind],
      [10, squareKind],
      [17, squareKind],
      [18, squareKind],
      [37, starKind],
      [38, starKind],
    ]);
    const red = COLOR_NAMES.indexOf('red');
    expect(labels.color[9]).toBe(red + 1);
    expect(labels.pair[9]).toBe(1 + (squareKind - 1) * COLOR_NAMES.length + red);
    expect(labels.size[9]).toBe(2); // large
    expect(labels.size[38]).toBe(1); // small
  });

  it('a tile sees only the shapes in its region, a thumbnail gives a shape smaller than a patch its centre patch', () => {
    // The top-left tile of a 2x2 grid over the 64x48 image, stretched to 32x32 (sy = 0.75).
    const tile: View = { kind: 'tile', region: { x0: 0, y0: 0, x1: 32, y1: 24 }, width: 32, height: 32 };
    const tileLabels = viewPatchLabels(scene, tile, kinds, 8);
    expect(new Set(tileLabels.kind)).toEqual(new Set([0, squareKind]));
    const otherTile: View = { kind: 'tile', region: { x0: 32, y0: 24, x1: 64, y1: 48 }, width: 32, height: 32 };
    expect(new Set(viewPatchLabels(scene, otherTile, kinds, 8).kind)).toEqual(new Set([0, starKind]));
    // A 16x16 thumbnail: each patch covers 32 x 24 source pixels; each shape owns exactly its centre's patch.
    const thumbnail: View = { kind: 'thumbnail', region: { x0: 0, y0: 0, x1: 64, y1: 48 }, width: 16, height: 16 };
    expect(labelled(viewPatchLabels(scene, thumbnail, kinds, 8).kind)).toEqual([
      [0, squareKind],
      [3, starKind],
    ]);
  });

  it('says when the scene has a kind the labels do not know', () => {
    const view: View = { kind: 'whole', region: { x0: 0, y0: 0, x1: 64, y1: 48 }, width: 64, height: 48 };
    expect(() => viewPatchLabels(scene, view, ['circle', 'square'], 8)).toThrow(/has a star, which is not one of the kinds given \(circle, square\)/);
  });
});

describe('views of a prepared image', () => {
  const tower = () => new VisionTransformer(tinyViT({ imageSize: 32, patchSize: 8, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 32, positions: 'rope2d' }));
  const dataset = new ShapesDataset(fineDetailOptions({ sizes: [{ width: 128, height: 96 }] }));
  const image = dataset.sample('test', 0).image;

  it("'native': one whole view at the processed size", () => {
    const plugin = visionModality({ mode: 'native', encoder: tower(), mergeSize: 2 });
    const prepared = plugin.prepare(image);
    expect(imageViews(prepared)).toEqual([{ kind: 'whole', region: { x0: 0, y0: 0, x1: 128, y1: 96 }, width: prepared.width, height: prepared.height }]);
  });

  it("'tiles': the tiles row-major over the image, the thumbnail where the plugin puts it", () => {
    for (const placement of ['first', 'last'] as const) {
      const plugin = visionModality({ mode: 'tiles', encoder: tower(), tileSize: 32, maxTiles: 6, thumbnail: placement });
      const prepared: PreparedImage = plugin.prepare(image);
      const views = imageViews(prepared);
      expect(views).toHaveLength(prepared.views);
      const { rows, cols } = prepared.tileGrid!;
      expect(cols * rows).toBe(prepared.views - 1);
      expect(views[prepared.thumbnailIndex!]!.kind).toBe('thumbnail');
      const tiles = views.filter((v) => v.kind === 'tile');
      expect(tiles[0]!.region).toEqual({ x0: 0, y0: 0, x1: 128 / cols, y1: 96 / rows });
      expect(tiles[1]!.region.x0).toBeCloseTo(128 / cols); // row-major: the second tile is to the right
      const last = tiles.at(-1)!.region;
      expect([last.x0, last.y0, last.x1, last.y1]).toEqual([((cols - 1) * 128) / cols, ((rows - 1) * 96) / rows, 128, 96]);
    }
  });

  it("refuses 'vit' images that are not square and 'fuyu' images", () => {
    const plugin = visionModality({ mode: 'vit', encoder: tower() });
    expect(() => imageViews(plugin.prepare(image))).toThrow(/cropped or padded.*pass the views yourself/);
    expect(() => imageViews({ ...plugin.prepare(image), mode: 'fuyu' })).toThrow(/'fuyu' images have no vision tower/);
  });
});
