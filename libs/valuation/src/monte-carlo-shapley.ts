import { invalidArgument } from '@fedmm/core';
import { positiveInt } from './exact-shapley.js';
import { MarginalStats, walkPermutation } from './permutation-sampling.js';
import { type ValuationResult, valuesRecord } from './result.js';
import { seededRng, shuffled } from './rng.js';
import { asCached, type CachedUtility, type Utility, validatePlayers } from './utility.js';

export interface MonteCarloShapleyOptions {
  /** Sample exactly this many permutations. Exclusive with `tolerance`. */
  readonly permutations?: number;
  /** Sample until every value's standard error is at most this. Default 0.005 when `permutations` is unset. */
  readonly tolerance?: number;
  /** Fewest permutations before the tolerance test applies. Default max(10, n). */
  readonly minPermutations?: number;
  /** Cap for the tolerance mode. Default 1000. */
  readonly maxPermutations?: number;
  /** Seed of the permutation sampler; the same seed reproduces the same values. Default 0. */
  readonly seed?: number | string;
}

/** Monte Carlo permutation Shapley (Castro et al. 2009): mean marginal contribution over random orders. */
export async function monteCarloShapley(
  players: readonly string[],
  utility: Utility | CachedUtility,
  options: MonteCarloShapleyOptions = {},
): Promise<ValuationResult> {
  validatePlayers(players);
  if (options.permutations !== undefined && options.tolerance !== undefined) {
    throw invalidArgument('monteCarloShapley takes either permutations or tolerance, not both; pick one stopping rule');
  }
  const n = players.length;
  const fixed = options.permutations !== undefined ? positiveInt(options.permutations, 'permutations') : undefined;
  const tolerance = options.tolerance ?? 0.005;
  if (!(tolerance > 0)) throw invalidArgument(`tolerance must be positive, got ${tolerance}`);
  const minPermutations = positiveInt(options.minPermutations ?? Math.max(10, n), 'minPermutations');
  const maxPermutations = positiveInt(options.maxPermutations ?? 1000, 'maxPermutations');
  const rng = seededRng(options.seed ?? 0);
  const cache = asCached(utility);
  const before = cache.evaluations;
  const [emptyValue, fullValue] = await Promise.all([cache.value([]), cache.value(players)]);
  const indices = players.map((_, i) => i);
  const stats = new MarginalStats(n);
  let converged = false;
  for (;;) {
    if (fixed !== undefined) {
      if (stats.count >= fixed) {
        converged = true;
        break;
      }
    } else {
      if (stats.count >= minPermutations && stats.maxStandardError() <= tolerance) {
        converged = true;
        break;
      }
      if (stats.count >= maxPermutations) break;
    }
    stats.add(await walkPermutation(shuffled(indices, rng), players, cache, emptyValue, fullValue, 0));
  }
  return {
    method: 'monte-carlo',
    values: valuesRecord(players, stats.mean),
    emptyValue,
    fullValue,
    evaluations: cache.evaluations - before,
    permutations: stats.count,
    converged,
  };
}
