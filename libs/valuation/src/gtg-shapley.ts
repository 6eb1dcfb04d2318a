import { invalidArgument } from '@fedmm/core';
import { positiveInt } from './exact-shapley.js';
import { MarginalStats, walkPermutation } from './permutation-sampling.js';
import { type ValuationResult, valuesRecord } from './result.js';
import { seededRng, shuffled } from './rng.js';
import { asCached, type CachedUtility, type Utility, validatePlayers } from './utility.js';

export interface GtgShapleyOptions {
  /** Within-round truncation: stop evaluating a permutation once a prefix is within this of v(all). Default 0.001. */
  readonly withinRoundEpsilon?: number;
  /** Between-round truncation: if |v(all) - v(empty)| is at most this, every value is 0. Default 0.001. */
  readonly betweenRoundThreshold?: number;
  /** Converged when the mean relative change of the estimates over the last `convergenceWindow` permutations is at most this. Default 0.05. */
  readonly convergenceCriterion?: number;
  /** Permutations the convergence test looks back over. Default 10. */
  readonly convergenceWindow?: number;
  /** Fewest permutations before the convergence test applies. Default max(30, n) as in Liu et al. */
  readonly minPermutations?: number;
  /** Hard cap on permutations. Default 500. */
  readonly maxPermutations?: number;
  /**
   * Floor of the denominator of the relative change, as a fraction of |v(all) - v(empty)| / n.
   * Without it a player whose value is near zero (a null player) keeps the relative change
   * large forever and the test never passes. Default 0.01.
   */
  readonly relativeFloor?: number;
  /** Seed of the permutation sampler. Default 0. */
  readonly seed?: number | string;
}

/**
 * GTG-Shapley (Liu et al., ACM TIST 2022): Monte Carlo permutation Shapley over the round's
 * updates with between-round truncation, within-round truncation, guided sampling (each company
 * leads a permutation in turn, the rest in random order) and a convergence test on the running
 * estimates. Subset values are cached, so repeated prefixes cost nothing.
 */
export async function gtgShapley(
  players: readonly string[],
  utility: Utility | CachedUtility,
  options: GtgShapleyOptions = {},
): Promise<ValuationResult> {
  validatePlayers(players);
  const n = players.length;
  const epsilon = nonNegative(options.withinRoundEpsilon ?? 0.001, 'withinRoundEpsilon');
  const roundThreshold = nonNegative(options.betweenRoundThreshold ?? 0.001, 'betweenRoundThreshold');
  const criterion = nonNegative(options.convergenceCriterion ?? 0.05, 'convergenceCriterion');
  const window = positiveInt(options.convergenceWindow ?? 10, 'convergenceWindow');
  const minPermutations = positiveInt(options.minPermutations ?? Math.max(30, n), 'minPermutations');
  const maxPermutations = positiveInt(options.maxPermutations ?? 500, 'maxPermutations');
  const relativeFloor = nonNegative(options.relativeFloor ?? 0.01, 'relativeFloor');
  if (maxPermutations < minPermutations) {
    throw invalidArgument(`maxPermutations (${maxPermutations}) is below minPermutations (${minPermutations}); raise the cap`);
  }
  const cache = asCached(utility);
  const before = cache.evaluations;
  const [emptyValue, fullValue] = await Promise.all([cache.value([]), cache.value(players)]);
  const span = Math.abs(fullValue - emptyValue);
  if (span <= roundThreshold) {
    return {
      method: 'gtg',
      values: valuesRecord(players, new Float64Array(n)),
      emptyValue,
      fullValue,
      evaluations: cache.evaluations - before,
      permutations: 0,
      converged: true,
      truncated: true,
    };
  }
  const rng = seededRng(options.seed ?? 0);
  const floor = (relativeFloor * span) / n;
  const stats = new MarginalStats(n);
  // history[k] holds the running means after permutation count - k, newest first.
  const history: Float64Array[] = [];
  let converged = false;
  let leader = 0;
  while (stats.count < maxPermutations) {
    const rest = shuffled(
      players.map((_, i) => i).filter((i) => i !== leader),
      rng,
    );
    const order = [leader, ...rest];
    leader = (leader + 1) % n;
    stats.add(await walkPermutation(order, players, cache, emptyValue, fullValue, epsilon));
    history.unshift(Float64Array.from(stats.mean));
    if (history.length > window + 1) history.pop();
    if (stats.count >= minPermutations && history.length === window + 1 && relativeChange(history, floor) <= criterion) {
      converged = true;
      break;
    }
  }
  return {
    method: 'gtg',
    values: valuesRecord(players, stats.mean),
    emptyValue,
    fullValue,
    evaluations: cache.evaluations - before,
    permutations: stats.count,
    converged,
  };
}

/** Largest, over the window, of the mean relative distance between an older estimate and the newest. */
function relativeChange(history: readonly Float64Array[], floor: number): number {
  const latest = history[0] as Float64Array;
  let worst = 0;
  for (let k = 1; k < history.length; k++) {
    const older = history[k] as Float64Array;
    let sum = 0;
    for (let i = 0; i < latest.length; i++) {
      const now = latest[i] ?? 0;
      sum += Math.abs(now - (older[i] ?? 0)) / Math.max(Math.abs(now), floor, 1e-12);
    }
    worst = Math.max(worst, sum / latest.length);
  }
  return worst;
}

function nonNegative(x: number, name: string): number {
  if (!Number.isFinite(x) || x < 0) throw invalidArgument(`${name} must be a finite number >= 0, got ${x}`);
  return x;
}
