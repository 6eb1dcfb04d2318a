import type { SecureGroup, TierAssignment } from '@fedmm/valuation';

/** One scored round of a task. */
export interface RoundValuation {
  readonly round: number;
  readonly attempt: number;
  /** Shapley estimator: exact, gtg, monte-carlo, leave-one-out or secure-group. */
  readonly method: string;
  /** What v(S) measured: `validation:<metric>` or `consensus-distance` (see docs/VALUATION.md). */
  readonly utility: string;
  readonly values: Readonly<Record<string, number>>;
  readonly evaluations: number;
  readonly emptyValue: number;
  readonly fullValue: number;
  readonly secure: boolean;
  readonly groups?: readonly SecureGroup[];
  readonly scoredAt: number;
}

/** Everything the service keeps about a task: the rounds, and the standing derived from them. */
export interface ContributionState {
  readonly taskId: string;
  readonly rounds: readonly RoundValuation[];
  readonly cumulative: Readonly<Record<string, number>>;
  readonly shares: Readonly<Record<string, number>>;
  readonly tiers: Readonly<Record<string, TierAssignment>>;
}

/** One row of the contribution table. */
export interface ContributionRow {
  readonly tenant: string;
  readonly roundValue: number;
  readonly cumulativeValue: number;
  readonly rewardShare: number;
  readonly tier: string;
  readonly versionDelayRounds: number;
}

/** Candidate parameters, by tensor name, scored on a validation set: higher is better. */
export type Evaluator = (params: Map<string, Float32Array>) => Promise<number>;
