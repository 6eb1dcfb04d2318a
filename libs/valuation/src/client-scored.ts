import { invalidArgument } from '@fedmm/core';
import type { EvaluateFn } from './subset-model-utility.js';

/** A company's own scoring of a candidate model on its private validation data. */
export type ClientScorer = (params: Float32Array) => Promise<number>;

export interface ClientScoredEvaluateOptions {
  readonly scorers: ReadonlyMap<string, ClientScorer>;
  /** Weight of each company's score (e.g. its validation set size). Default 1 each. */
  readonly weights?: ReadonlyMap<string, number>;
  /** Fraction of the lowest and of the highest scores dropped before averaging, against misreports. Default 0. */
  readonly trim?: number;
  /** Fewest scores that must come back. Default: all. */
  readonly quorum?: number;
}

/**
 * An evaluate callback for when the platform holds no validation set: each company scores the
 * candidate on its own data and the platform combines the reported scores (trimmed weighted mean).
 * Pair it with secureGroupShapley so candidates are still built from group aggregates only.
 */
export function clientScoredEvaluate(options: ClientScoredEvaluateOptions): EvaluateFn {
  const trim = options.trim ?? 0;
  if (!(trim >= 0 && trim < 0.5)) throw invalidArgument(`trim must be in [0, 0.5), got ${trim}`);
  const quorum = options.quorum ?? options.scorers.size;
  if (!(Number.isInteger(quorum) && quorum >= 1 && quorum <= options.scorers.size)) {
    throw invalidArgument(`quorum must be an integer between 1 and ${options.scorers.size}, got ${quorum}`);
  }
  return async (params) => {
    const settled = await Promise.allSettled(
      [...options.scorers].map(async ([client, score]) => ({ client, score: await score(params) })),
    );
    const scores = settled
      .flatMap((s) => (s.status === 'fulfilled' && Number.isFinite(s.value.score) ? [s.value] : []))
      .map(({ client, score }) => ({ score, weight: options.weights?.get(client) ?? 1 }))
      .sort((a, b) => a.score - b.score);
    if (scores.length < quorum) {
      throw invalidArgument(`only ${scores.length} companies returned a finite score, the quorum is ${quorum}; retry or lower the quorum`);
    }
    const drop = Math.floor(scores.length * trim);
    const kept = scores.slice(drop, scores.length - drop);
    const total = kept.reduce((s, x) => s + x.weight, 0);
    if (!(total > 0)) throw invalidArgument('the kept scores carry no weight; give companies positive weights');
    return kept.reduce((s, x) => s + x.weight * x.score, 0) / total;
  };
}
