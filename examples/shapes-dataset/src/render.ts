// Rasterizes a scene into an 8-bit RGB image (HWC): background with noise, then each shape blended by its
// anti-aliased coverage (the fraction of a pixel's sub-samples inside the shape).
import type { RgbImage } from '@chimera/vision-encoder';
import { insideShape } from './kinds';
import { SeededRandom } from './random';
import type { Scene } from './scene';

export function renderScene(scene: Scene): RgbImage {
  const { width, height, background } = scene;
  const data = new Uint8Array(width * height * 3);
  const noise = new SeededRandom(background.noiseSeed);
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < 3; c++) {
      const jitter = background.noise > 0 ? Math.round(noise.uniform(-1, 1) * background.noise) : 0;
      data[i * 3 + c] = clampByte(background.rgb[c]! + jitter);
    }
  }
  const k = scene.antialias;
  for (const shape of scene.shapes) {
    const half = shape.size / 2;
    const { x: cx, y: cy } = shape.center;
    const xStart = Math.max(0, Math.floor(shape.bbox.x0));
    const xEnd = Math.min(width, Math.ceil(shape.bbox.x1));
    const yStart = Math.max(0, Math.floor(shape.bbox.y0));
    const yEnd = Math.min(height, Math.ceil(shape.bbox.y1));
    for (let py = yStart; py < yEnd; py++) {
      for (let px = xStart; px < xEnd; px++) {
        let hits = 0;
        for (let sy = 0; sy < k; sy++) {
          const v = (py + (sy + 0.5) / k - cy) / half;
          for (let sx = 0; sx < k; sx++) {
            const u = (px + (sx + 0.5) / k - cx) / half;
            if (insideShape(shape.kind, u, v)) hits++;
          }
        }
        if (hits === 0) continue;
        const coverage = hits / (k * k);
        const at = (py * width + px) * 3;
        for (let c = 0; c < 3; c++) {
          data[at + c] = clampByte(Math.round(data[at + c]! * (1 - coverage) + shape.rgb[c]! * coverage));
        }
      }
    }
  }
  return { data, width, height };
}

function clampByte(value: number): number {
  return Math.min(255, Math.max(0, value));
}
