// The shape kinds and their geometry: an inside test in unit coordinates, where the shape fills the box
// [-1, 1] x [-1, 1] (y points down, as in the image) and so its bounding box is exactly its drawn extent.

export const SHAPE_KINDS = ['circle', 'square', 'triangle', 'cross', 'star'] as const;
export type ShapeKind = (typeof SHAPE_KINDS)[number];

/** Plural nouns for counting questions. */
export const PLURALS: Readonly<Record<ShapeKind, string>> = {
  circle: 'circles',
  square: 'squares',
  triangle: 'triangles',
  cross: 'crosses',
  star: 'stars',
};

export function isShapeKind(value: unknown): value is ShapeKind {
  return typeof value === 'string' && (SHAPE_KINDS as readonly string[]).includes(value);
}

/** Half the width of a cross's arms, relative to half its size. */
const CROSS_ARM = 0.34;
/** Inner radius of the star's notches relative to its tips. */
const STAR_INNER = 0.45;

/** A five-pointed star, tip up, stretched to fill [-1, 1] on both axes. */
const STAR_POLYGON: readonly (readonly [number, number])[] = (() => {
  const raw = Array.from({ length: 10 }, (_, i) => {
    const angle = -Math.PI / 2 + (i * Math.PI) / 5;
    const radius = i % 2 === 0 ? 1 : STAR_INNER;
    return [radius * Math.cos(angle), radius * Math.sin(angle)] as const;
  });
  const xs = raw.map((p) => p[0]);
  const ys = raw.map((p) => p[1]);
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  return raw.map(([x, y]) => [(2 * (x - minX)) / (maxX - minX) - 1, (2 * (y - minY)) / (maxY - minY) - 1] as const);
})();

/** Whether the unit-coordinate point (u, v) lies inside a shape of this kind. */
export function insideShape(kind: ShapeKind, u: number, v: number): boolean {
  switch (kind) {
    case 'circle':
      return u * u + v * v <= 1;
    case 'square':
      return Math.abs(u) <= 1 && Math.abs(v) <= 1;
    case 'triangle':
      // Apex at (0, -1), base from (-1, 1) to (1, 1).
      return v <= 1 && Math.abs(u) <= (v + 1) / 2;
    case 'cross': {
      const au = Math.abs(u);
      const av = Math.abs(v);
      return (au <= CROSS_ARM && av <= 1) || (av <= CROSS_ARM && au <= 1);
    }
    case 'star':
      return insidePolygon(STAR_POLYGON, u, v);
    default:
      throw new Error(`insideShape: unknown kind '${String(kind)}'; expected one of ${SHAPE_KINDS.join(', ')}`);
  }
}

/** Even-odd rule. */
function insidePolygon(polygon: readonly (readonly [number, number])[], x: number, y: number): boolean {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i]!;
    const [xj, yj] = polygon[j]!;
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}
