// Seeded pseudo-random numbers for the generator: sfc32 (Doty-Humphrey's Small Fast Counting generator),
// seeded through splitmix32, so every sample can be drawn on its own from a 32-bit seed (random access).

/** A bijective 32-bit mix (splitmix32's finalizer): distinct inputs give distinct outputs. */
export function mix32(value: number): number {
  let z = (value + 0x9e3779b9) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * Combines a seed with a stream number into a new 32-bit seed. For a fixed `seed` it is a bijection of
 * `stream`, so distinct sample ids never share a seed.
 */
export function deriveSeed(seed: number, stream: number): number {
  checkSeed('deriveSeed', seed);
  checkSeed('deriveSeed', stream);
  return mix32((mix32(seed) ^ stream) >>> 0);
}

/** sfc32: 128 bits of state, so streams from different seeds do not overlap in practice. */
export class SeededRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    checkSeed('SeededRandom', seed);
    this.a = mix32(seed);
    this.b = mix32(this.a ^ 0x68e31da4);
    this.c = mix32(this.b ^ 0xb5297a4d);
    this.d = 1;
    // Warm up so nearby seeds decorrelate before the first draw is used.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform in [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(Number.isInteger(n) && n > 0)) throw new Error(`SeededRandom.int: n must be a positive integer, got ${n}`);
    return Math.floor(this.next() * n);
  }

  /** Uniform integer in [low, high] (both ends included). */
  intBetween(low: number, high: number): number {
    return low + this.int(high - low + 1);
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('SeededRandom.pick: the list is empty');
    return items[this.int(items.length)]!;
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }
}

function checkSeed(where: string, seed: number): void {
  if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) {
    throw new Error(`${where}: expected an integer seed in [0, 2^32), got ${seed}; pass e.g. seed >>> 0`);
  }
}
