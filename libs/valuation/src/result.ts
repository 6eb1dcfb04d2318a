/** How a set of contribution values was computed. */
export type ValuationMethod = 'exact' | 'monte-carlo' | 'gtg' | 'leave-one-out' | 'secure-group';

/** Contribution values of one round, with the cost of computing them. */
export interface ValuationResult {
  readonly method: ValuationMethod;
  /** Value per company id. */
  readonly values: Readonly<Record<string, number>>;
  /** v(empty set): the metric of the previous model. */
  readonly emptyValue: number;
  /** v(all): the metric of the model rebuilt from every company's update. */
  readonly fullValue: number;
  /** Distinct model evaluations this computation caused (cache hits excluded). */
  readonly evaluations: number;
  /** Permutations sampled (sampling methods only). */
  readonly permutations?: number;
  /** Whether the stopping criterion was met before the permutation cap (sampling methods only). */
  readonly converged?: boolean;
  /** GTG between-round truncation: the round changed the metric too little to value. */
  readonly truncated?: boolean;
}

/** Pairs player ids with values, in order. */
export function valuesRecord(players: readonly string[], values: ArrayLike<number>): Record<string, number> {
  // fromEntries defines own properties, so an id such as "__proto__" stays an ordinary key.
  return Object.fromEntries(players.map((p, i) => [p, values[i] ?? 0]));
}
