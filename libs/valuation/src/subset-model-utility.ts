import { invalidArgument } from '@fedmm/core';
import type { Utility } from './utility.js';
import { validatePlayers } from './utility.js';

/** One company's update for the round (a delta over the previous parameters) and its aggregation weight. */
export interface ClientUpdate {
  readonly client: string;
  readonly update: Float32Array;
  readonly weight: number;
}

/** An update and its weight, as an aggregation strategy consumes them. */
export interface WeightedUpdate {
  readonly update: Float32Array;
  readonly weight: number;
}

/** Combines a subset's updates into one delta (the aggregator's strategy). */
export type AggregateFn = (updates: readonly WeightedUpdate[]) => Float32Array | Promise<Float32Array>;

/** Turns previous parameters and an aggregate delta into the candidate model (server optimizer). */
export type ApplyFn = (previous: Float32Array, aggregate: Float32Array) => Float32Array;

/** Scores candidate parameters on the platform's validation set (higher is better). */
export type EvaluateFn = (params: Float32Array) => Promise<number>;

/** FedAvg: the weighted mean of the updates. */
export function weightedMean(updates: readonly WeightedUpdate[]): Float32Array {
  const first = updates[0];
  if (!first) throw invalidArgument('weightedMean needs at least one update');
  const out = new Float64Array(first.update.length);
  let total = 0;
  for (const { update, weight } of updates) {
    if (update.length !== out.length) {
      throw invalidArgument(`update length ${update.length} differs from ${out.length}; all updates must cover the same parameters`);
    }
    total += weight;
    for (let i = 0; i < out.length; i++) out[i] = (out[i] ?? 0) + weight * (update[i] ?? 0);
  }
  if (!(total > 0)) throw invalidArgument(`weights sum to ${total}; aggregation weights must be positive`);
  return Float32Array.from(out, (x) => x / total);
}

/**
 * Each update weighted by its share of the whole round's weight, absent companies counting as a
 * zero update: v(S) is then the round's model without the others' contributions, and a company
 * that sends zeros is an exact null player. FedAvg over the subset (weightedMean) instead lets a
 * zero update dilute the others, which gives such a company a negative value.
 */
export function roundShare(totalWeight: number): AggregateFn {
  if (!(Number.isFinite(totalWeight) && totalWeight > 0)) {
    throw invalidArgument(`round total weight must be positive, got ${totalWeight}`);
  }
  return (updates) => {
    const first = updates[0];
    if (!first) throw invalidArgument('roundShare needs at least one update');
    const out = new Float64Array(first.update.length);
    for (const { update, weight } of updates) {
      for (let i = 0; i < out.length; i++) out[i] = (out[i] ?? 0) + weight * (update[i] ?? 0);
    }
    return Float32Array.from(out, (x) => x / totalWeight);
  };
}

/** previous + aggregate: plain FedAvg with server learning rate 1. */
export function addDelta(previous: Float32Array, aggregate: Float32Array): Float32Array {
  if (previous.length !== aggregate.length) {
    throw invalidArgument(`aggregate length ${aggregate.length} differs from the model's ${previous.length} parameters`);
  }
  const out = new Float32Array(previous.length);
  for (let i = 0; i < out.length; i++) out[i] = (previous[i] ?? 0) + (aggregate[i] ?? 0);
  return out;
}

export interface SubsetModelUtilityOptions {
  readonly previous: Float32Array;
  readonly updates: readonly ClientUpdate[];
  readonly evaluate: EvaluateFn;
  /** Default weightedMean. */
  readonly aggregate?: AggregateFn;
  /** Default addDelta. */
  readonly apply?: ApplyFn;
}

/**
 * The utility of a round: v(S) = evaluate(apply(previous, aggregate(updates of S))), and
 * v(empty) = evaluate(previous). Only for rounds where the platform may see individual updates;
 * under secure aggregation use secureGroupShapley.
 */
export class SubsetModelUtility {
  readonly players: readonly string[];
  readonly #options: SubsetModelUtilityOptions;
  readonly #byClient: ReadonlyMap<string, ClientUpdate>;

  constructor(options: SubsetModelUtilityOptions) {
    const players = options.updates.map((u) => u.client);
    validatePlayers(players, 'updates');
    for (const u of options.updates) {
      if (u.update.length !== options.previous.length) {
        throw invalidArgument(
          `update of ${u.client} has ${u.update.length} parameters, the model has ${options.previous.length}; send a delta over the same parameters`,
        );
      }
      if (!(Number.isFinite(u.weight) && u.weight > 0)) {
        throw invalidArgument(`update of ${u.client} has weight ${u.weight}; weights must be positive (e.g. sample counts)`);
      }
    }
    this.players = Object.freeze(players);
    this.#options = options;
    this.#byClient = new Map(options.updates.map((u) => [u.client, u]));
  }

  /** The utility callback the valuation methods take. */
  readonly utility: Utility = async (subset) => {
    const { previous, evaluate } = this.#options;
    if (subset.length === 0) return evaluate(previous);
    const chosen = subset.map((c) => {
      const u = this.#byClient.get(c);
      if (!u) throw invalidArgument(`no update from ${JSON.stringify(c)} in this round; value only companies that sent one`);
      return u;
    });
    const aggregate = await (this.#options.aggregate ?? weightedMean)(chosen);
    return evaluate((this.#options.apply ?? addDelta)(previous, aggregate));
  };
}
