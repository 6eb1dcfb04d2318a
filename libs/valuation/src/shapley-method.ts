import { type ExactShapleyOptions, exactShapley } from './exact-shapley.js';
import { type GtgShapleyOptions, gtgShapley } from './gtg-shapley.js';
import { type MonteCarloShapleyOptions, monteCarloShapley } from './monte-carlo-shapley.js';
import type { ValuationResult } from './result.js';
import type { CachedUtility, Utility } from './utility.js';

/** Which Shapley estimator to run, with its options. */
export type ShapleyMethod =
  | { readonly kind: 'exact'; readonly options?: ExactShapleyOptions }
  | { readonly kind: 'gtg'; readonly options?: GtgShapleyOptions }
  | { readonly kind: 'monte-carlo'; readonly options?: MonteCarloShapleyOptions };

/** Runs the chosen Shapley estimator. */
export function runShapley(
  players: readonly string[],
  utility: Utility | CachedUtility,
  method: ShapleyMethod,
): Promise<ValuationResult> {
  switch (method.kind) {
    case 'exact':
      return exactShapley(players, utility, method.options);
    case 'gtg':
      return gtgShapley(players, utility, method.options);
    case 'monte-carlo':
      return monteCarloShapley(players, utility, method.options);
  }
}
