/**
 * Position ids for one packed row: sequential 1-D, CogVLM-style shared (every position of a media item gets
 * one id; Wang et al. 2023, "CogVLM: Visual Expert for Pretrained Language Models"), or 3-D M-RoPE
 * (Wang et al. 2024, "Qwen2-VL"): text gets (p, p, p); a media grid cell (f, r, c) gets (s+f, s+r, s+c) and
 * the text after it starts at the largest of those plus one.
 */
import { gridSize, type MediaGrid } from './contract';

/**
 * How position ids are assigned: 'sequential' (1-D), 'shared' (every position of a media item gets one id, CogVLM) or
 * 'mrope' (3-D, Qwen2-VL).
 */
export type PositionMode = 'sequential' | 'shared' | 'mrope';

/** A contiguous stretch of a row: a text run or one media item. */
export interface PositionSpan {
  /** Positions in the span. */
  length: number;
  /** Whether the span is a media item (text otherwise). */
  media: boolean;
  /** The item's grid, used by 'mrope'. */
  grid?: MediaGrid;
  /** Names the item in errors, e.g. `image 2 (row 1)`. */
  label?: string;
}

/** Position ids of one row, from {@link rowPositions}. */
export interface RowPositions {
  /** One array of `length` ids per axis: 1 axis, or 3 (temporal, height, width) for `mrope`. */
  axes: number[][];
  /** The id the next appended token takes (for generation after the prompt). */
  next: number;
}

/** Position ids for one packed row of spans under `mode`. */
export function rowPositions(spans: readonly PositionSpan[], mode: PositionMode): RowPositions {
  const rank = mode === 'mrope' ? 3 : 1;
  const axes: number[][] = Array.from({ length: rank }, () => []);
  let next = 0;
  for (const span of spans) {
    if (span.length === 0) continue;
    if (span.media && mode === 'shared') {
      for (let i = 0; i < span.length; i++) axes[0]!.push(next);
      next += 1;
    } else if (span.media && mode === 'mrope' && span.grid) {
      next = pushGridPositions(axes, span, span.grid, next);
    } else {
      for (let i = 0; i < span.length; i++) for (const axis of axes) axis.push(next + i);
      next += span.length;
    }
  }
  return { axes, next };
}

function pushGridPositions(axes: number[][], span: PositionSpan, grid: MediaGrid, start: number): number {
  const frames = grid.frames ?? 1;
  if (gridSize(grid) !== span.length) {
    throw new Error(
      `${span.label ?? 'media item'} occupies ${span.length} positions but its grid ${frames}x${grid.rows}x${grid.cols} ` +
        `covers ${gridSize(grid)}; M-RoPE needs one position per grid cell (drop row-break tokens or fix the grid)`,
    );
  }
  for (let f = 0; f < frames; f++) {
    for (let r = 0; r < grid.rows; r++) {
      for (let c = 0; c < grid.cols; c++) {
        axes[0]!.push(start + f);
        axes[1]!.push(start + r);
        axes[2]!.push(start + c);
      }
    }
  }
  return start + Math.max(frames, grid.rows, grid.cols);
}
