import { invalidArgument } from '@fedmm/core';
import { planNoise, type AccountantKind } from '@fedmm/dp';
import type { MechanismEvent } from './types.js';

/** What a task's privacy settings say about one round, from the coordinator's point of view. */
export type RoundMechanism =
  | {
      /** Client-level central DP: the aggregator clips each update and adds Gaussian noise to the sum. */
      readonly mode: 'client';
      /** Every company that could be selected: each is protected, selected or not. */
      readonly population: readonly string[];
      /** Expected clients per round / population size. */
      readonly samplingRate: number;
      readonly noiseMultiplier: number;
    }
  | {
      /** Record-level DP: each company's agent runs DP-SGD on its own records. */
      readonly mode: 'record';
      /** Per company: batch size / its dataset size, its noise multiplier, and its local steps this round. */
      readonly clients: readonly { readonly tenant: string; readonly samplingRate: number; readonly noiseMultiplier: number; readonly steps: number }[];
    };

/**
 * The mechanism events to reserve for one round. Client-level DP is one noisy aggregation, so each
 * company in the population gets one step at the round's sampling rate; record-level DP accounts
 * each company's own DP-SGD.
 */
export function roundEvents(m: RoundMechanism): MechanismEvent[] {
  if (m.mode === 'client') {
    if (m.population.length === 0) throw invalidArgument('client-level DP needs the population of the task (its member companies)');
    return [...new Set(m.population)].map((tenant) => ({ tenant, samplingRate: m.samplingRate, noiseMultiplier: m.noiseMultiplier, steps: 1 }));
  }
  return m.clients.map((c) => ({ tenant: c.tenant, samplingRate: c.samplingRate, noiseMultiplier: c.noiseMultiplier, steps: c.steps }));
}

/**
 * The noise multiplier of a task: the configured one when given (> 0), else the smallest one that
 * keeps the whole schedule (`samplingRate`, `steps` in total) within targetEpsilon at delta.
 */
export function resolveNoiseMultiplier(p: {
  noiseMultiplier?: number;
  targetEpsilon?: number;
  delta: number;
  samplingRate: number;
  steps: number;
  accountant?: AccountantKind;
}): number {
  if (p.noiseMultiplier !== undefined && p.noiseMultiplier > 0) return p.noiseMultiplier;
  if (p.targetEpsilon === undefined || !(p.targetEpsilon > 0)) {
    throw invalidArgument('a DP task needs noise_multiplier > 0 or target_epsilon > 0 to calibrate the noise from');
  }
  return planNoise({ epsilon: p.targetEpsilon, delta: p.delta, samplingRate: p.samplingRate, steps: p.steps, accountant: p.accountant ?? 'rdp' });
}
