import { type ValuationResult, valuesRecord } from './result.js';
import { asCached, type CachedUtility, type Utility, validatePlayers } from './utility.js';

/** Leave-one-out: v(all) - v(all without i). Cheap (n + 2 evaluations) but blind to redundancy. */
export async function leaveOneOut(
  players: readonly string[],
  utility: Utility | CachedUtility,
): Promise<ValuationResult> {
  validatePlayers(players);
  const cache = asCached(utility);
  const before = cache.evaluations;
  const [emptyValue, fullValue] = await Promise.all([cache.value([]), cache.value(players)]);
  const without = await Promise.all(players.map((p) => cache.value(players.filter((q) => q !== p))));
  return {
    method: 'leave-one-out',
    values: valuesRecord(players, without.map((w) => fullValue - w)),
    emptyValue,
    fullValue,
    evaluations: cache.evaluations - before,
  };
}
