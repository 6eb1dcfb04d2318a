import { invalidArgument } from '@fedmm/core';

/**
 * The value of a coalition: a metric of the model rebuilt from the coalition's updates
 * (higher is better). It must be a pure function of the subset for the round being valued.
 */
export type Utility = (subset: readonly string[]) => Promise<number>;

const KEY_SEPARATOR = '\u001f';

/** The cache key of a subset: its members sorted and joined, so order never matters. */
export function subsetKey(subset: readonly string[]): string {
  return [...subset].sort().join(KEY_SEPARATOR);
}

/**
 * Memoizes a utility by subset and counts distinct evaluations. Concurrent requests for the same
 * subset share one evaluation; a failed evaluation is forgotten so that a retry runs it again.
 */
export class CachedUtility {
  readonly #fn: Utility;
  readonly #cache = new Map<string, Promise<number>>();
  #evaluations = 0;
  #requests = 0;

  constructor(fn: Utility) {
    this.#fn = fn;
  }

  /** Distinct subsets evaluated so far (cache misses). */
  get evaluations(): number {
    return this.#evaluations;
  }

  /** Requests served so far, hits included. */
  get requests(): number {
    return this.#requests;
  }

  /** Whether this subset has been requested already. */
  has(subset: readonly string[]): boolean {
    return this.#cache.has(subsetKey(subset));
  }

  /** The value of a subset, evaluated at most once. */
  value(subset: readonly string[]): Promise<number> {
    this.#requests++;
    const key = subsetKey(subset);
    const hit = this.#cache.get(key);
    if (hit) return hit;
    assertDistinct(subset);
    this.#evaluations++;
    const sorted = key === '' ? [] : key.split(KEY_SEPARATOR);
    const pending = this.#fn(sorted).then((v) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw invalidArgument(
          `utility returned ${String(v)} for subset [${sorted.join(', ')}]; it must return a finite number (use a bounded metric such as accuracy or negative clipped loss)`,
        );
      }
      return v;
    });
    pending.catch(() => this.#cache.delete(key));
    this.#cache.set(key, pending);
    return pending;
  }

  /** A plain Utility view of this cache. */
  readonly utility: Utility = (subset) => this.value(subset);
}

/** Wraps a plain utility in a fresh cache, or reuses a cache the caller shares across methods. */
export function asCached(u: Utility | CachedUtility): CachedUtility {
  return u instanceof CachedUtility ? u : new CachedUtility(u);
}

/** Checks a player list: non-empty strings, no duplicates. */
export function validatePlayers(players: readonly string[], what = 'players'): void {
  if (players.length === 0) throw invalidArgument(`${what} is empty; value at least one company`);
  for (const p of players) {
    if (typeof p !== 'string' || p.length === 0 || p.includes(KEY_SEPARATOR)) {
      throw invalidArgument(`${what} contains an invalid id ${JSON.stringify(p)}; ids are non-empty strings without control characters`);
    }
  }
  assertDistinct(players, what);
}

function assertDistinct(ids: readonly string[], what = 'subset'): void {
  const seen = new Set<string>();
  for (const id of ids) {
    if (seen.has(id)) throw invalidArgument(`${what} lists ${JSON.stringify(id)} twice; each company appears once`);
    seen.add(id);
  }
}
