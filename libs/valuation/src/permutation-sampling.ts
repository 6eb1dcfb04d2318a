import type { CachedUtility } from './utility.js';

/** Running mean and variance per player of the marginal contributions seen so far (Welford). */
export class MarginalStats {
  readonly mean: Float64Array;
  readonly #m2: Float64Array;
  count = 0;

  constructor(players: number) {
    this.mean = new Float64Array(players);
    this.#m2 = new Float64Array(players);
  }

  add(marginals: Float64Array): void {
    this.count++;
    for (let i = 0; i < marginals.length; i++) {
      const x = marginals[i] ?? 0;
      const m = this.mean[i] ?? 0;
      const delta = x - m;
      const next = m + delta / this.count;
      this.mean[i] = next;
      this.#m2[i] = (this.#m2[i] ?? 0) + delta * (x - next);
    }
  }

  /** Largest standard error of the mean over all players. */
  maxStandardError(): number {
    if (this.count < 2) return Number.POSITIVE_INFINITY;
    let worst = 0;
    for (let i = 0; i < this.mean.length; i++) {
      const variance = (this.#m2[i] ?? 0) / (this.count - 1);
      worst = Math.max(worst, Math.sqrt(variance / this.count));
    }
    return worst;
  }
}

/**
 * Walks one permutation and returns each player's marginal contribution along it. Prefixes whose
 * value is already within `epsilon` of v(all) are not evaluated (within-round truncation); their
 * remaining players get a marginal of zero. epsilon 0 evaluates every prefix.
 */
export async function walkPermutation(
  order: readonly number[],
  players: readonly string[],
  cache: CachedUtility,
  emptyValue: number,
  fullValue: number,
  epsilon: number,
): Promise<Float64Array> {
  const marginals = new Float64Array(players.length);
  const prefix: string[] = [];
  let previous = emptyValue;
  for (let j = 0; j < order.length; j++) {
    const index = order[j] as number;
    prefix.push(players[index] as string);
    let current: number;
    if (epsilon > 0 && Math.abs(fullValue - previous) < epsilon) {
      current = previous;
    } else if (j === order.length - 1) {
      current = fullValue;
    } else {
      current = await cache.value(prefix);
    }
    marginals[index] = current - previous;
    previous = current;
  }
  return marginals;
}
