import type { EnvReader } from '@fedmm/core';
import type { BaseConfig } from '@fedmm/service-kit';

export interface ValuationConfig {
  /** Where accepted individual updates wait, as Float32 files, until their round is scored. */
  readonly updatesDir: string;
  /** Validation sets: `<validationDataDir>/<task>/manifest.jsonl` makes the task valued by model metric. */
  readonly validationDataDir: string;
  /** Exact Shapley up to this many companies in a round, GTG-Shapley above. */
  readonly exactMaxCompanies: number;
  /** Consumer group on fedmm.updates (its own, so that aggregation workers are not affected). */
  readonly consumerGroup: string;
  /** The topic of update chunks and verdicts. */
  readonly updatesTopic: string;
  /** Whether to consume fedmm.updates at all (off for a service that only serves GetContributions). */
  readonly consumeUpdates: boolean;
  /** How long ScoreRound waits for the round's updates to arrive from the topic. */
  readonly updateWaitMs: number;
  /** Seed of the permutation sampler, so a round's values can be recomputed. */
  readonly seed: string;
}

/** Reads the valuation service's settings (see docs/VALUATION.md). */
export function readValuationConfig(read: EnvReader, base: BaseConfig): ValuationConfig {
  return Object.freeze({
    updatesDir: read.string('FEDMM_VALUATION_UPDATES_DIR', `${base.dataDir}/valuation-updates`),
    validationDataDir: read.string('FEDMM_VALUATION_DATA_DIR', `${base.dataDir}/validation`),
    exactMaxCompanies: read.int('FEDMM_VALUATION_EXACT_MAX', 6, { min: 1, max: 20 }),
    consumerGroup: read.string('FEDMM_VALUATION_GROUP', 'fedmm-valuation'),
    updatesTopic: read.string('FEDMM_VALUATION_UPDATES_TOPIC', 'fedmm.updates'),
    consumeUpdates: read.bool('FEDMM_VALUATION_CONSUME', true),
    updateWaitMs: read.int('FEDMM_VALUATION_UPDATE_WAIT_MS', 30_000, { min: 0 }),
    seed: read.string('FEDMM_VALUATION_SEED', 'fedmm'),
  });
}
