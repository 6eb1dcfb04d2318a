import { invalidArgument } from '@fedmm/core';
import { positiveInt } from './exact-shapley.js';
import { type ValuationResult, valuesRecord } from './result.js';
import { randomSeed, seededRng, shuffled } from './rng.js';
import { runShapley, type ShapleyMethod } from './shapley-method.js';
import { addDelta, type ApplyFn, type EvaluateFn } from './subset-model-utility.js';
import { CachedUtility, validatePlayers } from './utility.js';

/** A secure-aggregation group: its members' updates are only ever seen summed together. */
export interface SecureGroup {
  readonly id: string;
  readonly members: readonly string[];
}

/**
 * Everything secure-group valuation may use. By construction it holds no per-company update:
 * the only model material is `aggregateOfGroups`, which returns the secure aggregate of a union
 * of whole groups, each at least `threshold` companies.
 */
export interface SecureGroupShapleyInput {
  readonly groups: readonly SecureGroup[];
  /** The secure-aggregation threshold: the fewest companies whose updates may be revealed as one sum. */
  readonly threshold: number;
  readonly previous: Float32Array;
  /** The aggregate delta of the union of these groups, produced by secure aggregation. */
  readonly aggregateOfGroups: (groupIds: readonly string[]) => Promise<Float32Array>;
  readonly evaluate: EvaluateFn;
  /** Default addDelta. */
  readonly apply?: ApplyFn;
  /** Default GTG-Shapley with its defaults; exact is cheap when there are few groups. */
  readonly method?: ShapleyMethod;
}

/** Contribution values where companies inherit an equal part of their group's Shapley value. */
export interface SecureGroupValuation extends ValuationResult {
  readonly method: 'secure-group';
  readonly groupValues: Readonly<Record<string, number>>;
  readonly groups: readonly SecureGroup[];
}

/**
 * Shapley over secure sub-aggregates: the players are the groups, v(C) is the metric of the model
 * rebuilt from the secure aggregate of the groups in C, and each group's value is split equally
 * among its members. It tells which groups helped; it cannot tell members of one group apart
 * within a round (see docs/VALUATION.md).
 */
export async function secureGroupShapley(input: SecureGroupShapleyInput): Promise<SecureGroupValuation> {
  const threshold = positiveInt(input.threshold, 'threshold');
  validateGroups(input.groups, threshold);
  const groupIds = input.groups.map((g) => g.id);
  const apply = input.apply ?? addDelta;
  const cache = new CachedUtility(async (subset) => {
    if (subset.length === 0) return input.evaluate(input.previous);
    const aggregate = await input.aggregateOfGroups(subset);
    return input.evaluate(apply(input.previous, aggregate));
  });
  const method: ShapleyMethod = input.method ?? { kind: 'gtg' };
  const result = await runShapley(groupIds, cache, method);
  const members: string[] = [];
  const memberValues: number[] = [];
  for (const g of input.groups) {
    const share = (result.values[g.id] ?? 0) / g.members.length;
    for (const m of g.members) {
      members.push(m);
      memberValues.push(share);
    }
  }
  return {
    ...result,
    method: 'secure-group',
    values: valuesRecord(members, memberValues),
    groupValues: result.values,
    groups: input.groups,
  };
}

/**
 * Partitions the round's companies into disjoint groups of at least `threshold` members.
 * Regrouping at random every round lets cumulative values separate members over time; one round
 * must use one partition, since overlapping groups would let differences expose one company.
 */
export function formSecureGroups(
  clients: readonly string[],
  options: { readonly threshold: number; readonly seed?: number | string; readonly groupPrefix?: string },
): SecureGroup[] {
  validatePlayers(clients, 'clients');
  const threshold = positiveInt(options.threshold, 'threshold');
  if (clients.length < threshold) {
    throw invalidArgument(
      `${clients.length} companies are fewer than the secure-aggregation threshold ${threshold}; secure valuation needs at least one full group`,
    );
  }
  const count = Math.floor(clients.length / threshold);
  const order = shuffled(clients, seededRng(options.seed ?? randomSeed()));
  const groups: string[][] = Array.from({ length: count }, () => []);
  order.forEach((c, i) => groups[i % count]?.push(c));
  const prefix = options.groupPrefix ?? 'group-';
  return groups.map((members, i) => ({ id: `${prefix}${i + 1}`, members: members.sort() }));
}

function validateGroups(groups: readonly SecureGroup[], threshold: number): void {
  if (groups.length === 0) throw invalidArgument('no secure-aggregation groups given; form them with formSecureGroups');
  validatePlayers(
    groups.map((g) => g.id),
    'group ids',
  );
  const owner = new Map<string, string>();
  for (const g of groups) {
    if (g.members.length < threshold) {
      throw invalidArgument(
        `group ${g.id} has ${g.members.length} members, below the secure-aggregation threshold ${threshold}; its aggregate would expose too few companies`,
      );
    }
    validatePlayers(g.members, `members of group ${g.id}`);
    for (const m of g.members) {
      const other = owner.get(m);
      if (other !== undefined) {
        throw invalidArgument(
          `company ${m} is in groups ${other} and ${g.id}; groups must be disjoint, or differences of aggregates would expose single updates`,
        );
      }
      owner.set(m, g.id);
    }
  }
}
