// src/kinds.ts
var SHAPE_KINDS = ["circle", "square", "triangle", "cross", "star"];
var PLURALS = {
  circle: "circles",
  square: "squares",
  triangle: "triangles",
  cross: "crosses",
  star: "stars"
};
function isShapeKind(value) {
  return typeof value === "string" && SHAPE_KINDS.includes(value);
}
var CROSS_ARM = 0.34;
var STAR_INNER = 0.45;
var STAR_POLYGON = (() => {
  const raw = Array.from({ length: 10 }, (_, i) => {
    const angle = -Math.PI / 2 + i * Math.PI / 5;
    const radius = i % 2 === 0 ? 1 : STAR_INNER;
    return [radius * Math.cos(angle), radius * Math.sin(angle)];
  });
  const xs = raw.map((p) => p[0]);
  const ys = raw.map((p) => p[1]);
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  return raw.map(([x, y]) => [2 * (x - minX) / (maxX - minX) - 1, 2 * (y - minY) / (maxY - minY) - 1]);
})();
function insideShape(kind, u, v) {
  switch (kind) {
    case "circle":
      return u * u + v * v <= 1;
    case "square":
      return Math.abs(u) <= 1 && Math.abs(v) <= 1;
    case "triangle":
      return v <= 1 && Math.abs(u) <= (v + 1) / 2;
    case "cross": {
      const au = Math.abs(u);
      const av = Math.abs(v);
      return au <= CROSS_ARM && av <= 1 || av <= CROSS_ARM && au <= 1;
    }
    case "star":
      return insidePolygon(STAR_POLYGON, u, v);
    default:
      throw new Error(`insideShape: unknown kind '${String(kind)}'; expected one of ${SHAPE_KINDS.join(", ")}`);
  }
}
function insidePolygon(polygon, x, y) {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i];
    const [xj, yj] = polygon[j];
    if (yi > y !== yj > y && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

// src/palette.ts
var COLOR_NAMES = ["red", "green", "blue", "yellow", "purple", "white"];
var PALETTE = {
  red: [220, 45, 45],
  green: [45, 185, 70],
  blue: [60, 105, 245],
  yellow: [240, 215, 45],
  purple: [170, 75, 225],
  white: [235, 235, 235]
};
function isColorName(value) {
  return typeof value === "string" && COLOR_NAMES.includes(value);
}

// src/options.ts
function resolveShapesOptions(options = {}) {
  const imageSize = options.imageSize ?? 32;
  const count = options.shapesPerImage ?? 1;
  const resolved = {
    imageSize,
    kinds: [...options.kinds ?? SHAPE_KINDS],
    colors: [...options.colors ?? COLOR_NAMES],
    shapesPerImage: typeof count === "number" ? { min: count, max: count } : { ...count },
    shapeSize: options.shapeSize ? { ...options.shapeSize } : { min: 0.22 * imageSize, max: 0.45 * imageSize },
    backgroundLevel: options.backgroundLevel ? { ...options.backgroundLevel } : { min: 10, max: 50 },
    backgroundNoise: options.backgroundNoise ?? 6,
    colorJitter: options.colorJitter ?? 12,
    antialias: options.antialias ?? 4,
    minGap: options.minGap ?? 1,
    seed: options.seed ?? 0
  };
  const problems = problemsOf(resolved);
  if (problems.length > 0) throw new Error(`shapes dataset options are invalid:
  ${problems.join("\n  ")}`);
  return resolved;
}
function problemsOf(o) {
  const problems = [];
  const isInt = (v) => Number.isInteger(v);
  if (!(isInt(o.imageSize) && o.imageSize >= 8)) problems.push(`imageSize must be an integer >= 8, got ${o.imageSize}`);
  if (o.kinds.length === 0) problems.push("kinds is empty; name at least one of " + SHAPE_KINDS.join(", "));
  o.kinds.forEach((k) => {
    if (!isShapeKind(k)) problems.push(`kind '${String(k)}' is unknown; expected one of ${SHAPE_KINDS.join(", ")}`);
  });
  if (new Set(o.kinds).size !== o.kinds.length) problems.push(`kinds has duplicates: ${o.kinds.join(", ")}`);
  if (o.colors.length === 0) problems.push("colors is empty; name at least one of " + COLOR_NAMES.join(", "));
  o.colors.forEach((c) => {
    if (!isColorName(c)) problems.push(`color '${String(c)}' is unknown; expected one of ${COLOR_NAMES.join(", ")}`);
  });
  if (new Set(o.colors).size !== o.colors.length) problems.push(`colors has duplicates: ${o.colors.join(", ")}`);
  const { min: nMin, max: nMax } = o.shapesPerImage;
  if (!(isInt(nMin) && isInt(nMax) && nMin >= 1 && nMax >= nMin && nMax <= 9)) {
    problems.push(`shapesPerImage must be integers with 1 <= min <= max <= 9, got ${nMin}..${nMax}`);
  }
  const { min: sMin, max: sMax } = o.shapeSize;
  if (!(sMin >= 3 && sMax > sMin)) problems.push(`shapeSize must satisfy 3 <= min < max (pixels), got ${sMin}..${sMax}`);
  if (!(o.minGap >= 0)) problems.push(`minGap must be >= 0, got ${o.minGap}`);
  if (sMax > o.imageSize - 2 * o.minGap) {
    problems.push(`shapeSize.max (${sMax}) must fit the image: at most imageSize - 2 * minGap = ${o.imageSize - 2 * o.minGap}`);
  }
  const { min: bMin, max: bMax } = o.backgroundLevel;
  if (!(bMin >= 0 && bMax >= bMin && bMax <= 255)) problems.push(`backgroundLevel must satisfy 0 <= min <= max <= 255, got ${bMin}..${bMax}`);
  if (!(o.backgroundNoise >= 0 && o.backgroundNoise <= 64)) problems.push(`backgroundNoise must be in [0, 64], got ${o.backgroundNoise}`);
  if (!(o.colorJitter >= 0 && o.colorJitter <= 64)) problems.push(`colorJitter must be in [0, 64], got ${o.colorJitter}`);
  if (!(isInt(o.antialias) && o.antialias >= 1 && o.antialias <= 8)) problems.push(`antialias must be an integer in [1, 8], got ${o.antialias}`);
  if (!(isInt(o.seed) && o.seed >= 0 && o.seed <= 4294967295)) problems.push(`seed must be an integer in [0, 2^32), got ${o.seed}`);
  return problems;
}

// src/random.ts
function mix32(value) {
  let z = value + 2654435769 >>> 0;
  z = Math.imul(z ^ z >>> 16, 2246822507) >>> 0;
  z = Math.imul(z ^ z >>> 13, 3266489909) >>> 0;
  return (z ^ z >>> 16) >>> 0;
}
function deriveSeed(seed, stream) {
  checkSeed("deriveSeed", seed);
  checkSeed("deriveSeed", stream);
  return mix32((mix32(seed) ^ stream) >>> 0);
}
var SeededRandom = class {
  a;
  b;
  c;
  d;
  constructor(seed) {
    checkSeed("SeededRandom", seed);
    this.a = mix32(seed);
    this.b = mix32(this.a ^ 1759714724);
    this.c = mix32(this.b ^ 3039394381);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.nextUint32();
  }
  nextUint32() {
    const t = (this.a + this.b >>> 0) + this.d >>> 0;
    this.d = this.d + 1 >>> 0;
    this.a = this.b ^ this.b >>> 9;
    this.b = this.c + (this.c << 3) >>> 0;
    this.c = (this.c << 21 | this.c >>> 11) >>> 0;
    this.c = this.c + t >>> 0;
    return t;
  }
  /** Uniform in [0, 1). */
  next() {
    return this.nextUint32() / 4294967296;
  }
  /** Uniform in [low, high). */
  uniform(low, high) {
    return low + (high - low) * this.next();
  }
  /** Uniform integer in [0, n). */
  int(n) {
    if (!(Number.isInteger(n) && n > 0)) throw new Error(`SeededRandom.int: n must be a positive integer, got ${n}`);
    return Math.floor(this.next() * n);
  }
  /** Uniform integer in [low, high] (both ends included). */
  intBetween(low, high) {
    return low + this.int(high - low + 1);
  }
  pick(items) {
    if (items.length === 0) throw new Error("SeededRandom.pick: the list is empty");
    return items[this.int(items.length)];
  }
  /** True with probability p. */
  chance(p) {
    return this.next() < p;
  }
};
function checkSeed(where, seed) {
  if (!(Number.isInteger(seed) && seed >= 0 && seed <= 4294967295)) {
    throw new Error(`${where}: expected an integer seed in [0, 2^32), got ${seed}; pass e.g. seed >>> 0`);
  }
}

// src/scene.ts
var PLACEMENT_TRIES = 200;
var SIZE_BAND = 0.4;
function sizeBand(options, sizeClass) {
  const { min, max } = options.shapeSize;
  const width = SIZE_BAND * (max - min);
  return sizeClass === "small" ? { min, max: min + width } : { min: max - width, max };
}
function generateScene(seed, options) {
  const rng = new SeededRandom(seed);
  const size = options.imageSize;
  const level = Math.round(rng.uniform(options.backgroundLevel.min, options.backgroundLevel.max));
  const count = rng.intBetween(options.shapesPerImage.min, options.shapesPerImage.max);
  const specs = Array.from({ length: count }, () => {
    const kind = rng.pick(options.kinds);
    const color = rng.pick(options.colors);
    const rgb = PALETTE[color].map((c) => clampByte(Math.round(c + rng.uniform(-1, 1) * options.colorJitter)));
    const sizeClass = rng.chance(0.5) ? "small" : "large";
    return { kind, color, rgb, sizeClass };
  });
  const placementOrder = specs.map((_, i) => i).sort((a, b) => Number(specs[a].sizeClass === "small") - Number(specs[b].sizeClass === "small"));
  const placed = specs.map(() => null);
  for (const i of placementOrder) {
    const spec = specs[i];
    const band = sizeBand(options, spec.sizeClass);
    for (let attempt = 0; attempt < PLACEMENT_TRIES; attempt++) {
      const side = rng.uniform(band.min, band.max);
      const low = options.minGap + side / 2;
      const high = size - options.minGap - side / 2;
      const center = { x: rng.uniform(low, high), y: rng.uniform(low, high) };
      const bbox = { x0: center.x - side / 2, y0: center.y - side / 2, x1: center.x + side / 2, y1: center.y + side / 2 };
      if (placed.every((other) => other === null || apart(bbox, other.bbox, options.minGap))) {
        placed[i] = { ...spec, size: side, center, bbox };
        break;
      }
    }
  }
  const shapes = placed.filter((s) => s !== null);
  return {
    width: size,
    height: size,
    background: { rgb: [level, level, level], noise: options.backgroundNoise, noiseSeed: rng.nextUint32() },
    antialias: options.antialias,
    shapes
  };
}
function apart(a, b, gap) {
  return a.x1 + gap <= b.x0 || b.x1 + gap <= a.x0 || a.y1 + gap <= b.y0 || b.y1 + gap <= a.y0;
}
function clampByte(value) {
  return Math.min(255, Math.max(0, value));
}

// src/render.ts
function renderScene(scene) {
  const { width, height, background } = scene;
  const data = new Uint8Array(width * height * 3);
  const noise = new SeededRandom(background.noiseSeed);
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < 3; c++) {
      const jitter = background.noise > 0 ? Math.round(noise.uniform(-1, 1) * background.noise) : 0;
      data[i * 3 + c] = clampByte2(background.rgb[c] + jitter);
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
          data[at + c] = clampByte2(Math.round(data[at + c] * (1 - coverage) + shape.rgb[c] * coverage));
        }
      }
    }
  }
  return { data, width, height };
}
function clampByte2(value) {
  return Math.min(255, Math.max(0, value));
}

// src/questions.ts
var QUESTION_TYPES = ["shape", "color", "count", "size", "left-of"];
var COUNT_WORDS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
var ANSWERS = [...SHAPE_KINDS, ...COLOR_NAMES, ...COUNT_WORDS, "small", "large", "yes", "no"];
var TEMPLATE_WORDS = ["what", "shape", "is", "the", "one", "color", "how", "many", "are", "there", "small", "or", "large", "left", "of", "?"];
var WORDS = [.../* @__PURE__ */ new Set([...TEMPLATE_WORDS, ...Object.values(PLURALS), ...ANSWERS])].sort();
var LEFT_OF_MARGIN = 0.5;
function questionsFor(scene, kinds) {
  const shapes = scene.shapes;
  const questions = [];
  const indicesOf = (match) => shapes.flatMap((s, i) => match(s) ? [i] : []);
  const uniqueKinds = kinds.filter((kind) => indicesOf((s) => s.kind === kind).length === 1);
  for (const color of COLOR_NAMES) {
    const found = indicesOf((s) => s.color === color);
    if (found.length === 1) questions.push({ type: "shape", text: `what shape is the ${color} one?`, answer: shapes[found[0]].kind, shapes: found });
  }
  for (const kind of uniqueKinds) {
    const found = indicesOf((s) => s.kind === kind);
    const shape = shapes[found[0]];
    questions.push({ type: "color", text: `what color is the ${kind}?`, answer: shape.color, shapes: found });
    questions.push({ type: "size", text: `is the ${kind} small or large?`, answer: shape.sizeClass, shapes: found });
  }
  for (const kind of kinds) {
    const found = indicesOf((s) => s.kind === kind);
    questions.push({ type: "count", text: `how many ${PLURALS[kind]} are there?`, answer: COUNT_WORDS[found.length], shapes: found });
  }
  for (const first of uniqueKinds) {
    for (const second of uniqueKinds) {
      if (first === second) continue;
      const a = indicesOf((s) => s.kind === first)[0];
      const b = indicesOf((s) => s.kind === second)[0];
      const dx = shapes[b].center.x - shapes[a].center.x;
      if (Math.abs(dx) < LEFT_OF_MARGIN * Math.max(shapes[a].size, shapes[b].size)) continue;
      questions.push({ type: "left-of", text: `is the ${first} left of the ${second}?`, answer: dx > 0 ? "yes" : "no", shapes: [a, b] });
    }
  }
  return questions;
}
function sampleQuestion(scene, kinds, rng, types = QUESTION_TYPES) {
  const all = questionsFor(scene, kinds);
  const available = types.filter((type2) => all.some((q) => q.type === type2));
  if (available.length === 0) return null;
  const type = rng.pick(available);
  let pool = all.filter((q) => q.type === type);
  if (type === "count" && rng.chance(0.5)) {
    const present = pool.filter((q) => q.answer !== "0");
    if (present.length > 0) pool = present;
  }
  return rng.pick(pool);
}

// src/splits.ts
var SPLIT_NAMES = ["train", "validation", "test"];
var SPLITS = {
  train: { start: 0, size: 2 ** 31 },
  validation: { start: 2 ** 31, size: 2 ** 30 },
  test: { start: 2 ** 31 + 2 ** 30, size: 2 ** 30 }
};
function sampleId(split, index) {
  const range = SPLITS[split];
  if (!range) throw new Error(`unknown split '${String(split)}'; expected one of ${SPLIT_NAMES.join(", ")}`);
  if (!(Number.isInteger(index) && index >= 0 && index < range.size)) {
    throw new Error(`sample index ${index} is outside split '${split}': expected an integer in [0, ${range.size})`);
  }
  return range.start + index;
}

// src/dataset.ts
var SCENE_STREAM = 1;
var QUESTION_STREAM = 2;
var ShapesDataset = class {
  options;
  constructor(options = {}) {
    this.options = resolveShapesOptions(options);
  }
  /** The kinds in label order. */
  get kinds() {
    return this.options.kinds;
  }
  /** The scene of sample `index` of `split` (no pixels). */
  scene(split, index) {
    return generateScene(this.sampleSeed(split, index, SCENE_STREAM), this.options);
  }
  sample(split, index) {
    const scene = this.scene(split, index);
    return { split, index, id: sampleId(split, index), scene, image: renderScene(scene) };
  }
  /** A single-shape sample and its kind's label; needs shapesPerImage 1. */
  classification(split, index) {
    const { min, max } = this.options.shapesPerImage;
    if (min !== 1 || max !== 1) {
      throw new Error(
        `ShapesDataset.classification: needs exactly one shape per image, but shapesPerImage is ${min}..${max}; build the dataset with shapesPerImage: 1, or use question() for multi-shape scenes`
      );
    }
    const sample = this.sample(split, index);
    const kind = sample.scene.shapes[0].kind;
    return { ...sample, kind, label: this.options.kinds.indexOf(kind) };
  }
  /**
   * A sample with one question about it (see sampleQuestion). Throws when no requested type applies to the
   * scene (e.g. only 'left-of' with single-shape images).
   */
  question(split, index, options = {}) {
    const types = options.types ?? QUESTION_TYPES;
    const slot = options.slot ?? 0;
    if (!(Number.isInteger(slot) && slot >= 0 && slot <= 65535)) throw new Error(`ShapesDataset.question: slot must be an integer in [0, 65535], got ${slot}`);
    const sample = this.sample(split, index);
    const rng = new SeededRandom(deriveSeed(this.sampleSeed(split, index, QUESTION_STREAM), slot));
    const question = sampleQuestion(sample.scene, this.options.kinds, rng, types);
    if (!question) {
      throw new Error(
        `ShapesDataset.question: no question of type ${types.join("/")} applies to ${split} sample ${index} (${sample.scene.shapes.length} shapes); add types such as 'count' that every scene has`
      );
    }
    return { ...sample, question };
  }
  /** Every unambiguous question about the sample's scene. */
  allQuestions(split, index) {
    return questionsFor(this.scene(split, index), this.options.kinds);
  }
  sampleSeed(split, index, stream) {
    return deriveSeed(deriveSeed(this.options.seed, sampleId(split, index)), stream);
  }
};

// src/font.ts
var GLYPH_WIDTH = 5;
var GLYPH_HEIGHT = 7;
var GLYPH_ADVANCE = GLYPH_WIDTH + 1;
var GLYPHS = {
  a: ".###. #...# #...# ##### #...# #...# #...#",
  b: "####. #...# #...# ####. #...# #...# ####.",
  c: ".###. #...# #.... #.... #.... #...# .###.",
  d: "####. #...# #...# #...# #...# #...# ####.",
  e: "##### #.... #.... ####. #.... #.... #####",
  f: "##### #.... #.... ####. #.... #.... #....",
  g: ".###. #...# #.... #.### #...# #...# .####",
  h: "#...# #...# #...# ##### #...# #...# #...#",
  i: ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
  j: "..### ...#. ...#. ...#. ...#. #..#. .##..",
  k: "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
  l: "#.... #.... #.... #.... #.... #.... #####",
  m: "#...# ##.## #.#.# #.#.# #...# #...# #...#",
  n: "#...# #...# ##..# #.#.# #..## #...# #...#",
  o: ".###. #...# #...# #...# #...# #...# .###.",
  p: "####. #...# #...# ####. #.... #.... #....",
  q: ".###. #...# #...# #...# #.#.# #..#. .##.#",
  r: "####. #...# #...# ####. #.#.. #..#. #...#",
  s: ".#### #.... #.... .###. ....# ....# ####.",
  t: "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
  u: "#...# #...# #...# #...# #...# #...# .###.",
  v: "#...# #...# #...# #...# #...# .#.#. ..#..",
  w: "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
  x: "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
  y: "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
  z: "##### ....# ...#. ..#.. .#... #.... #####",
  "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
  "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
  "2": ".###. #...# ....# ...#. ..#.. .#... #####",
  "3": "####. ....# ....# .###. ....# ....# ####.",
  "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
  "5": "##### #.... ####. ....# ....# #...# .###.",
  "6": ".###. #.... #.... ####. #...# #...# .###.",
  "7": "##### ....# ...#. ..#.. .#... .#... .#...",
  "8": ".###. #...# #...# .###. #...# #...# .###.",
  "9": ".###. #...# #...# .#### ....# ....# .###.",
  "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
  "!": "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..",
  ".": "..... ..... ..... ..... ..... ..... ..#..",
  ",": "..... ..... ..... ..... ..... ..#.. .#...",
  ":": "..... ..#.. ..... ..... ..... ..#.. .....",
  "-": "..... ..... ..... .###. ..... ..... .....",
  "_": "..... ..... ..... ..... ..... ..... #####",
  "/": "....# ....# ...#. ..#.. .#... #.... #....",
  "%": "##..# ##..# ...#. ..#.. .#... #..## #..##",
  "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
  ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
  "=": "..... ..... ##### ..... ##### ..... .....",
  "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
  "'": "..#.. ..#.. ..... ..... ..... ..... .....",
  " ": "..... ..... ..... ..... ..... ..... ....."
};
var UNKNOWN = "##### #...# #...# #...# #...# #...# #####";
var BITMAPS = new Map(
  Object.entries({ ...GLYPHS, "\0": UNKNOWN }).map(([ch, rows]) => [ch, rows.split(" ").map((row) => [...row].map((c) => c === "#"))])
);

// src/grid.ts
var LINE_HEIGHT = GLYPH_HEIGHT + 3;

// gen-tmp.ts
for (const [imageSize, shapes] of [[24, 1], [32, 1], [48, 4]]) {
  const d = new ShapesDataset({ imageSize, shapesPerImage: { min: 1, max: shapes } });
  d.sample("train", 0);
  const c = process.cpuUsage();
  const t = performance.now();
  for (let i = 0; i < 2e3; i++) d.sample("train", i);
  const cpu = process.cpuUsage(c);
  console.log(imageSize, shapes, ((performance.now() - t) / 2e3).toFixed(3), "ms/image wall", ((cpu.user + cpu.system) / 1e3 / 2e3).toFixed(3), "ms/image cpu");
}
