/**
 * Seeded randomness. Every random op in Chimera (initialisers, dropout masks, samplers) draws its seed from
 * here, so `manualSeed(n)` makes a run repeatable and the state can be checkpointed and restored on resume.
 */

/** A small, fast, seedable 32-bit generator (mulberry32); its whole state is one integer. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  nextInt(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }

  /** The generator's 32-bit state (save it to resume the same sequence). */
  getState(): number {
    return this.state;
  }

  /** Restores a state from {@link Rng.getState}. */
  setState(state: number): void {
    this.state = state >>> 0;
  }
}

let globalRng = new Rng(0x5eed);

/** Reseeds Chimera's global generator. */
export function manualSeed(seed: number): void {
  globalRng = new Rng(seed);
}

/** The global generator (for samplers and data shuffling that should follow `manualSeed`). */
export function globalRandom(): Rng {
  return globalRng;
}

/** A fresh seed for a tfjs random op (`tf.randomNormal(shape, 0, 1, 'float32', nextSeed())`). */
export function nextSeed(): number {
  return globalRng.nextUint32();
}
