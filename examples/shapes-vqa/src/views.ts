/**
 * Dense patch labels for any view geometry. A view is a rectangle of the scene (in source pixels) scaled to the
 * pixel grid the tower sees: the whole image at native size (Qwen2-VL), one tile of the resized image or the
 * thumbnail of the whole image (InternVL / NVLM tiling), the fixed-size input of a plain ViT. Every patch of a
 * view is labelled with the shape under it (background otherwise), from the scene description (the dataset's
 * ground truth), never from the questions.
 *
 * A patch belongs to a shape when the patch centre falls inside the shape's box, or, for shapes smaller than a
 * patch (a 4x-downscaled thumbnail makes a 12-pixel shape 3 pixels wide), when the shape's centre falls inside
 * the patch; so every shape whose centre is in a view owns at least one of its patches.
 */
import type { PreparedImage } from '@chimera/vision-encoder';
import { COLOR_NAMES, type Box, type Scene, type SceneShape, type ShapeKind } from '@chimera-examples/shapes-dataset';

/** What a view shows: the whole image, a tile of it, or the thumbnail next to the tiles. */
export type ViewKind = 'whole' | 'tile' | 'thumbnail';

export interface View {
  kind: ViewKind;
  /** The rectangle of the scene it shows, in source pixels (x1, y1 exclusive). */
  region: Box;
  /** The pixel grid it is scaled to (the tower's input for this view). */
  width: number;
  height: number;
}

/** Per-patch classes in row-major order (the tower's token order): 0 background, then 1 + the value's index. */
export interface PatchLabels {
  kind: Int32Array;
  color: Int32Array;
  size: Int32Array;
  /** The (kind, colour) pair as one class: 1 + kindIndex * colours + colourIndex. */
  pair: Int32Array;
}

export const LABEL_SETS = ['kind', 'color', 'size', 'pair'] as const satisfies readonly (keyof PatchLabels)[];
export const SIZE_CLASSES = ['small', 'large'] as const;

/** Classes of each label set (background included) for a dataset with `kinds`. */
export function labelClasses(kinds: readonly ShapeKind[]): Record<keyof PatchLabels, number> {
  return { kind: kinds.length + 1, color: COLOR_NAMES.length + 1, size: SIZE_CLASSES.length + 1, pair: kinds.length * COLOR_NAMES.length + 1 };
}

/**
 * The views of a prepared image, in the order of its pixels: 'native' one whole view at the processed size;
 * 'tiles' the tiles row-major over the stretched image and the thumbnail where the plugin put it; 'vit' one
 * whole view when the source is square (the fixed-size processors crop or pad other shapes: give views yourself).
 */
export function imageViews(prepared: PreparedImage): View[] {
  const { sourceWidth: w, sourceHeight: h, width, height } = prepared;
  const whole: Box = { x0: 0, y0: 0, x1: w, y1: h };
  if (prepared.mode === 'native') return [{ kind: 'whole', region: whole, width, height }];
  if (prepared.mode === 'vit') {
    if (w !== h) {
      throw new Error(
        `imageViews: a 'vit' mode image of ${w}x${h} is cropped or padded to ${width}x${height} by its processor, so its region is not known here; ` +
          "use square images, or pass the views yourself (viewsOf)",
      );
    }
    return [{ kind: 'whole', region: whole, width, height }];
  }
  if (prepared.mode === 'tiles') {
    const { tileGrid, thumbnailIndex = -1 } = prepared;
    if (!tileGrid) throw new Error("imageViews: a 'tiles' image without its tileGrid; prepare it with the vision plugin in 'tiles' mode");
    const tiles: View[] = [];
    for (let r = 0; r < tileGrid.rows; r++) {
      for (let c = 0; c < tileGrid.cols; c++) {
        const region = { x0: (c * w) / tileGrid.cols, x1: ((c + 1) * w) / tileGrid.cols, y0: (r * h) / tileGrid.rows, y1: ((r + 1) * h) / tileGrid.rows };
        tiles.push({ kind: 'tile', region, width, height });
      }
    }
    if (thumbnailIndex < 0) return tiles;
    const thumbnail: View = { kind: 'thumbnail', region: whole, width, height };
    return [...tiles.slice(0, thumbnailIndex), thumbnail, ...tiles.slice(thumbnailIndex)];
  }
  throw new Error(`imageViews: '${prepared.mode}' images have no vision tower to label patches for; use 'native', 'tiles' or 'vit'`);
}

/** Labels of a view's patches (`patchSize` in view pixels; a partial last row or column is dropped, as the tower does). */
export function viewPatchLabels(scene: Scene, view: View, kinds: readonly ShapeKind[], patchSize: number): PatchLabels {
  const rows = Math.floor(view.height / patchSize);
  const cols = Math.floor(view.width / patchSize);
  const n = rows * cols;
  const labels: PatchLabels = { kind: new Int32Array(n), color: new Int32Array(n), size: new Int32Array(n), pair: new Int32Array(n) };
  const { x0, y0, x1, y1 } = view.region;
  const sx = (x1 - x0) / view.width; // source pixels per view pixel
  const sy = (y1 - y0) / view.height;
  const set = (i: number, shape: SceneShape) => {
    const kind = kinds.indexOf(shape.kind);
    const color = COLOR_NAMES.indexOf(shape.color);
    if (kind < 0) throw new Error(`viewPatchLabels: the scene has a ${shape.kind}, which is not one of the kinds given (${kinds.join(', ')}); pass the dataset's kinds`);
    labels.kind[i] = kind + 1;
    labels.color[i] = color + 1;
    labels.size[i] = SIZE_CLASSES.indexOf(shape.sizeClass) + 1;
    labels.pair[i] = 1 + kind * COLOR_NAMES.length + color;
  };
  // Two passes: shapes smaller than a patch by their centre, then (winning) patch centres inside a box.
  for (const byCentre of [true, false]) {
    for (let r = 0; r < rows; r++) {
      const top = y0 + r * patchSize * sy;
      const bottom = top + patchSize * sy;
      const cy = (top + bottom) / 2;
      for (let c = 0; c < cols; c++) {
        const left = x0 + c * patchSize * sx;
        const right = left + patchSize * sx;
        const cx = (left + right) / 2;
        for (const shape of scene.shapes) {
          const { bbox, center } = shape;
          const owns = byCentre
            ? center.x >= left && center.x < right && center.y >= top && center.y < bottom
            : cx >= bbox.x0 && cx < bbox.x1 && cy >= bbox.y0 && cy < bbox.y1;
          if (owns) set(r * cols + c, shape);
        }
      }
    }
  }
  return labels;
}
