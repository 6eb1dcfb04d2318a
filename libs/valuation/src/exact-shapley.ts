import { invalidArgument } from '@fedmm/core';
import { type ValuationResult, valuesRecord } from './result.js';
import { asCached, type CachedUtility, type Utility, validatePlayers } from './utility.js';

export interface ExactShapleyOptions {
  /** Refuse federations larger than this (2^n evaluations). Default 20. */
  readonly maxPlayers?: number;
  /** Subsets evaluated at once (the compute interface may fan out to GPU workers). Default 1. */
  readonly concurrency?: number;
}

/** Exact Shapley values over all 2^n coalitions: the reference the approximations are judged by. */
export async function exactShapley(
  players: readonly string[],
  utility: Utility | CachedUtility,
  options: ExactShapleyOptions = {},
): Promise<ValuationResult> {
  validatePlayers(players);
  const n = players.length;
  const maxPlayers = options.maxPlayers ?? 20;
  if (n > maxPlayers) {
    throw invalidArgument(
      `exact Shapley over ${n} companies needs 2^${n} model evaluations, above the limit of 2^${maxPlayers}; use gtgShapley or monteCarloShapley, or raise maxPlayers`,
    );
  }
  const concurrency = positiveInt(options.concurrency ?? 1, 'concurrency');
  const cache = asCached(utility);
  const before = cache.evaluations;
  const size = 1 << n;
  const v = new Float64Array(size);
  const subsetOf = (mask: number): string[] => players.filter((_, i) => (mask & (1 << i)) !== 0);
  for (let start = 0; start < size; start += concurrency) {
    const end = Math.min(size, start + concurrency);
    const batch: Promise<number>[] = [];
    for (let mask = start; mask < end; mask++) batch.push(cache.value(subsetOf(mask)));
    const values = await Promise.all(batch);
    values.forEach((x, k) => {
      v[start + k] = x;
    });
  }
  // weight[s] = s!(n-s-1)!/n! = 1 / (n * C(n-1, s)): the chance that exactly a given s-subset precedes i.
  const weight = new Float64Array(n);
  let binom = 1;
  for (let s = 0; s < n; s++) {
    weight[s] = 1 / (n * binom);
    binom = (binom * (n - 1 - s)) / (s + 1);
  }
  const popcount = new Uint8Array(size);
  for (let mask = 1; mask < size; mask++) popcount[mask] = (popcount[mask >> 1] ?? 0) + (mask & 1);
  const phi = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const bit = 1 << i;
    let sum = 0;
    for (let mask = 0; mask < size; mask++) {
      if ((mask & bit) !== 0) continue;
      sum += (weight[popcount[mask] ?? 0] ?? 0) * ((v[mask | bit] ?? 0) - (v[mask] ?? 0));
    }
    phi[i] = sum;
  }
  return {
    method: 'exact',
    values: valuesRecord(players, phi),
    emptyValue: v[0] ?? 0,
    fullValue: v[size - 1] ?? 0,
    evaluations: cache.evaluations - before,
  };
}

export function positiveInt(x: number, name: string): number {
  if (!Number.isInteger(x) || x < 1) throw invalidArgument(`${name} must be a positive integer, got ${x}`);
  return x;
}
