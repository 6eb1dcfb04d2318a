import { invalidArgument } from '@fedmm/core';

/** How cumulative contributions become reward shares. */
export interface RewardRule {
  /** Shares proportional to each company's contribution above `floor` (negative or missing counts as 0). */
  readonly kind: 'proportional-positive';
  /** Contributions at or below this count as zero. Default 0. */
  readonly floor: number;
}

/** One access tier: companies whose share is at least `minShare` wait `versionDelay` rounds for a new version. */
export interface AccessTier {
  readonly name: string;
  readonly minShare: number;
  readonly versionDelay: number;
}

/** The tiers of a task, highest minShare first; the last has minShare 0 and catches everyone else. */
export interface AccessTierConfig {
  readonly tiers: readonly AccessTier[];
}

/** The tier a company is in now. */
export interface TierAssignment {
  readonly tier: string;
  readonly versionDelay: number;
}

export const DEFAULT_REWARD_RULE: RewardRule = Object.freeze({ kind: 'proportional-positive', floor: 0 });

export const DEFAULT_ACCESS_TIERS: AccessTierConfig = Object.freeze({
  tiers: Object.freeze([
    Object.freeze({ name: 'full', minShare: 0.05, versionDelay: 0 }),
    Object.freeze({ name: 'reduced', minShare: 0.005, versionDelay: 1 }),
    Object.freeze({ name: 'free-rider', minShare: 0, versionDelay: 3 }),
  ]),
});

/** Fills defaults and validates a reward rule; the result is frozen. */
export function compileRewardRule(input: Partial<RewardRule> = {}): RewardRule {
  const kind = input.kind ?? 'proportional-positive';
  if (kind !== 'proportional-positive') {
    throw invalidArgument(`unknown reward rule ${JSON.stringify(kind)}; the supported rule is "proportional-positive"`);
  }
  const floor = input.floor ?? 0;
  if (!Number.isFinite(floor) || floor < 0) throw invalidArgument(`reward floor must be a finite number >= 0, got ${floor}`);
  return Object.freeze({ kind, floor });
}

/** Validates tiers and orders them by minShare, highest first; the result is frozen. */
export function compileAccessTiers(input: { readonly tiers?: readonly AccessTier[] } = {}): AccessTierConfig {
  const tiers = input.tiers ?? DEFAULT_ACCESS_TIERS.tiers;
  if (tiers.length === 0) throw invalidArgument('access tiers are empty; define at least one tier with minShare 0');
  const names = new Set<string>();
  for (const t of tiers) {
    if (typeof t.name !== 'string' || t.name.length === 0) throw invalidArgument('every access tier needs a non-empty name');
    if (names.has(t.name)) throw invalidArgument(`access tier ${JSON.stringify(t.name)} is defined twice; tier names must be unique`);
    names.add(t.name);
    if (!(Number.isFinite(t.minShare) && t.minShare >= 0 && t.minShare <= 1)) {
      throw invalidArgument(`access tier ${t.name} has minShare ${t.minShare}; it must lie in [0, 1]`);
    }
    if (!(Number.isInteger(t.versionDelay) && t.versionDelay >= 0)) {
      throw invalidArgument(`access tier ${t.name} has versionDelay ${t.versionDelay}; it must be a whole number of rounds >= 0`);
    }
  }
  const sorted = [...tiers].sort((a, b) => b.minShare - a.minShare);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]?.minShare === sorted[i - 1]?.minShare) {
      throw invalidArgument(`access tiers ${sorted[i - 1]?.name} and ${sorted[i]?.name} share minShare ${sorted[i]?.minShare}; make the thresholds distinct`);
    }
  }
  if (sorted[sorted.length - 1]?.minShare !== 0) {
    throw invalidArgument('no access tier has minShare 0; add a lowest tier so that every company is in one');
  }
  return Object.freeze({ tiers: Object.freeze(sorted.map((t) => Object.freeze({ ...t }))) });
}

/** Reward shares from cumulative contributions: positive part above the floor, normalized to sum 1 (all 0 if nobody contributed). */
export function rewardShares(
  cumulative: Readonly<Record<string, number>>,
  rule: RewardRule = DEFAULT_REWARD_RULE,
): Record<string, number> {
  const positive = Object.entries(cumulative).map(([id, v]): [string, number] => {
    if (!Number.isFinite(v)) throw invalidArgument(`contribution of ${id} is ${v}; contributions must be finite`);
    return [id, Math.max(0, v - rule.floor)];
  });
  const total = positive.reduce((s, [, v]) => s + v, 0);
  return Object.fromEntries(positive.map(([id, v]) => [id, total > 0 ? v / total : 0]));
}

/** The tier for a reward share. */
export function accessTier(share: number, config: AccessTierConfig = DEFAULT_ACCESS_TIERS): TierAssignment {
  if (!(Number.isFinite(share) && share >= 0 && share <= 1 + 1e-9)) {
    throw invalidArgument(`reward share ${share} is outside [0, 1]; pass a share from rewardShares`);
  }
  const tier = config.tiers.find((t) => share >= t.minShare) ?? config.tiers[config.tiers.length - 1];
  if (!tier) throw invalidArgument('access tier config has no tiers; compile it with compileAccessTiers');
  return { tier: tier.name, versionDelay: tier.versionDelay };
}

/** Whether a company in this tier may download the version published at `versionRound` now. */
export function mayDownload(args: {
  readonly tier: Pick<TierAssignment, 'versionDelay'>;
  readonly versionRound: number;
  readonly currentRound: number;
}): boolean {
  const { tier, versionRound, currentRound } = args;
  if (!Number.isInteger(versionRound) || !Number.isInteger(currentRound) || versionRound < 0 || currentRound < 0) {
    throw invalidArgument(`rounds must be whole numbers >= 0, got version ${versionRound} and current ${currentRound}`);
  }
  return currentRound >= versionRound + tier.versionDelay;
}

/** Adds one round's values to the running totals (companies absent from the round keep their total). */
export function accumulate(
  cumulative: Readonly<Record<string, number>>,
  round: Readonly<Record<string, number>>,
): Record<string, number> {
  const out: Record<string, number> = { ...cumulative };
  for (const [id, v] of Object.entries(round)) out[id] = (out[id] ?? 0) + v;
  return out;
}
