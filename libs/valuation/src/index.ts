export { type Utility, CachedUtility, subsetKey, asCached } from './utility.js';
export { type ValuationMethod, type ValuationResult } from './result.js';
export { type Rng, seededRng, randomSeed, shuffled } from './rng.js';
export { type ExactShapleyOptions, exactShapley } from './exact-shapley.js';
export { type MonteCarloShapleyOptions, monteCarloShapley } from './monte-carlo-shapley.js';
export { type GtgShapleyOptions, gtgShapley } from './gtg-shapley.js';
export { leaveOneOut } from './leave-one-out.js';
export { type ShapleyMethod, runShapley } from './shapley-method.js';
export {
  type ClientUpdate,
  type WeightedUpdate,
  type AggregateFn,
  type ApplyFn,
  type EvaluateFn,
  type SubsetModelUtilityOptions,
  SubsetModelUtility,
  weightedMean,
  roundShare,
  addDelta,
} from './subset-model-utility.js';
export {
  type SecureGroup,
  type SecureGroupShapleyInput,
  type SecureGroupValuation,
  secureGroupShapley,
  formSecureGroups,
} from './secure-group-shapley.js';
export { type ClientScorer, type ClientScoredEvaluateOptions, clientScoredEvaluate } from './client-scored.js';
export {
  type RewardRule,
  type AccessTier,
  type AccessTierConfig,
  type TierAssignment,
  DEFAULT_REWARD_RULE,
  DEFAULT_ACCESS_TIERS,
  compileRewardRule,
  compileAccessTiers,
  rewardShares,
  accessTier,
  mayDownload,
  accumulate,
} from './rewards.js';
export { spearman } from './stats.js';
