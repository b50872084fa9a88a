/**
 * A small seeded pseudo-random generator, so simulated faults and test kill
 * points can be replayed with `--seed`.
 *
 * @module
 */

/** Draws reproducible numbers from a 32-bit seed (mulberry32). */
export class Rng {
  #state: number;

  /** Seeds the generator; without a seed, one is drawn from the system. */
  constructor(seed?: number) {
    this.#state = (seed ?? crypto.getRandomValues(new Uint32Array(1))[0]!) >>>
      0;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}
