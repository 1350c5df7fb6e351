/**
 * Dynamic tiling for high-resolution input (Chen et al. 2024, "How Far Are We to GPT-4V?", InternVL 1.5's
 * dynamic high resolution; used by NVLM-D, Dai et al. 2024): the image is stretched to a grid of
 * encoder-sized tiles whose aspect ratio best matches its own (at most `maxTiles` tiles), cut into those
 * tiles, and a thumbnail of the whole image (the global view) is added.
 *
 * Grid choice (InternVL's rule, rewritten): candidates are every cols x rows with minTiles <= cols*rows <=
 * maxTiles, visited by increasing tile count; the one whose cols/rows is closest to width/height wins. When a
 * larger grid has the same ratio as the best so far (1x1, 2x2, 3x3, ...), it replaces it only if the image
 * has more than half the pixels of that grid at full tile resolution, so small images are not blown up.
 *
 * Order of views: tiles row-major (left to right, then top to bottom), then the thumbnail (InternVL and
 * NVLM); `thumbnail: 'first'` puts it before the tiles (LLaVA-NeXT's base-image-first order). As in InternVL,
 * a 1x1 grid gets no thumbnail (it would repeat the single tile) unless `thumbnailWithSingleTile` is set.
 */
import * as tf from '@tensorflow/tfjs';

/** Where the global view (the whole image at tile size) goes among the tiles: first, last, or none. */
export type ThumbnailPlacement = 'first' | 'last' | 'none';

/** Options of {@link planTiling} (InternVL / NVLM dynamic tiling). */
export interface TilingOptions {
  /** Side of a square tile in pixels: the encoder's input size (e.g. 448 for InternViT, 336 for CLIP-L/336). */
  tileSize: number;
  /** Most tiles (thumbnail not counted); InternVL uses 6 to 12, NVLM-D 6. Default 6. */
  maxTiles?: number;
  /** Fewest tiles (default 1). */
  minTiles?: number;
  /** Where the global view goes among the views (default 'last'). */
  thumbnail?: ThumbnailPlacement;
  /** Add the thumbnail even when the grid is a single tile (default false, as InternVL). */
  thumbnailWithSingleTile?: boolean;
}

/** A grid of tiles. */
export interface TileGrid {
  /** Tile rows. */
  rows: number;
  /** Tile columns. */
  cols: number;
}

/** Everything about how one image is tiled, computable before touching a pixel. */
export interface TilingPlan {
  /** The tile grid (rows x cols of tiles). */
  grid: TileGrid;
  /** Size the image is stretched to before cutting: cols*tileSize x rows*tileSize. */
  resizedWidth: number;
  /** Height the image is stretched to before cutting: rows * tileSize. */
  resizedHeight: number;
  /** Side of a square tile in pixels. */
  tileSize: number;
  /** Index of the thumbnail among the views, or -1 when there is none. */
  thumbnailIndex: number;
  /** Tiles plus thumbnail: the number of encoder inputs. */
  views: number;
}

function checkCount(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`tiling: ${name} must be an integer >= 1, got ${value}`);
  }
}

/** Candidate grids with minTiles <= cols*rows <= maxTiles, by increasing tile count (then fewer columns first). */
export function candidateTileGrids(minTiles: number, maxTiles: number): TileGrid[] {
  checkCount(minTiles, 'minTiles');
  checkCount(maxTiles, 'maxTiles');
  if (minTiles > maxTiles) throw new Error(`tiling: minTiles (${minTiles}) must not exceed maxTiles (${maxTiles})`);
  const grids: TileGrid[] = [];
  for (let count = minTiles; count <= maxTiles; count++) {
    for (let cols = 1; cols <= count; cols++) {
      if (count % cols === 0) grids.push({ rows: count / cols, cols });
    }
  }
  return grids;
}

/** The tile grid for a `width` x `height` image (see the file comment for the rule). */
export function chooseTileGrid(
  width: number,
  height: number,
  options: Pick<TilingOptions, 'tileSize' | 'maxTiles' | 'minTiles'>,
): TileGrid {
  if (!(width > 0) || !(height > 0)) throw new Error(`tiling: image size must be positive, got ${width}x${height}`);
  checkCount(options.tileSize, 'tileSize');
  const aspect = width / height;
  const area = width * height;
  const tileArea = options.tileSize * options.tileSize;
  let best: TileGrid = { rows: 1, cols: 1 };
  let bestDiff = Infinity;
  for (const grid of candidateTileGrids(options.minTiles ?? 1, options.maxTiles ?? 6)) {
    const diff = Math.abs(aspect - grid.cols / grid.rows);
    if (diff < bestDiff) {
      bestDiff = diff;
      best = grid;
    } else if (diff === bestDiff && area > 0.5 * tileArea * grid.cols * grid.rows) {
      best = grid;
    }
  }
  return best;
}

/** The full tiling plan of a `width` x `height` image. */
export function planTiling(width: number, height: number, options: TilingOptions): TilingPlan {
  const grid = chooseTileGrid(width, height, options);
  const tiles = grid.rows * grid.cols;
  const placement = options.thumbnail ?? 'last';
  const hasThumbnail = placement !== 'none' && (tiles > 1 || options.thumbnailWithSingleTile === true);
  return {
    grid,
    resizedWidth: grid.cols * options.tileSize,
    resizedHeight: grid.rows * options.tileSize,
    tileSize: options.tileSize,
    thumbnailIndex: hasThumbnail ? (placement === 'first' ? 0 : tiles) : -1,
    views: tiles + (hasThumbnail ? 1 : 0),
  };
}

/**
 * Cuts a [rows*tile, cols*tile, C] image into its tiles [rows*cols, tile, tile, C], row-major. A reshape and
 * one rank-4 transpose: [rows, tile, cols, tile*C] -> [rows, cols, tile, tile*C].
 */
export function cutTiles(image: tf.Tensor3D, grid: TileGrid, tileSize: number): tf.Tensor4D {
  const [height, width, channels] = image.shape;
  if (height !== grid.rows * tileSize || width !== grid.cols * tileSize) {
    throw new Error(
      `cutTiles: a ${grid.rows}x${grid.cols} grid of ${tileSize}-pixel tiles needs a ` +
        `${grid.cols * tileSize}x${grid.rows * tileSize} image (width x height), got ${width}x${height}; resize it first`,
    );
  }
  return tf.tidy(() => {
    const rowsOfTiles = tf.reshape(image, [grid.rows, tileSize, grid.cols, tileSize * channels]);
    const tiles = tf.transpose(rowsOfTiles, [0, 2, 1, 3]); // [rows, cols, tile, tile*C]
    return tf.reshape(tiles, [grid.rows * grid.cols, tileSize, tileSize, channels]) as tf.Tensor4D;
  });
}
