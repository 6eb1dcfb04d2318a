import type { EnvReader } from '@fedmm/core';
import type { BaseConfig } from '@fedmm/service-kit';
import { DEFAULT_SHARD_ELEMENTS } from '@fedmm/tensor';

export interface AggregatorConfig {
  /** Workers run inside the coordinator's process (0 in Kubernetes, where workers are their own Deployment). */
  inProcessWorkers: number;
  leaseMs: number;
  tickMs: number;
  shardElements: number;
  maxAttempts: number;
  autoAdvance: boolean;
  /** Whether the privacy and valuation services are called (off: every reservation granted, no scoring). */
  usePrivacyService: boolean;
  useValuationService: boolean;
  /** Consumer group of the workers on fedmm.updates. */
  workerGroup: string;
  /** Threads that share the unmasking of one secure shard (1: the worker's own thread only). */
  unmaskThreads: number;
}

export function readAggregatorConfig(read: EnvReader, _base: BaseConfig): AggregatorConfig {
  return {
    inProcessWorkers: read.int('FEDMM_AGGREGATOR_WORKERS', 1, { min: 0, max: 64 }),
    leaseMs: read.int('FEDMM_AGGREGATOR_LEASE_MS', 5000, { min: 500 }),
    tickMs: read.int('FEDMM_AGGREGATOR_TICK_MS', 250, { min: 10 }),
    shardElements: read.int('FEDMM_SHARD_ELEMENTS', DEFAULT_SHARD_ELEMENTS, { min: 1, max: DEFAULT_SHARD_ELEMENTS }),
    maxAttempts: read.int('FEDMM_ROUND_MAX_ATTEMPTS', 3, { min: 1 }),
    autoAdvance: read.bool('FEDMM_ROUND_AUTO_ADVANCE', true),
    usePrivacyService: read.bool('FEDMM_AGGREGATOR_USE_PRIVACY', true),
    useValuationService: read.bool('FEDMM_AGGREGATOR_USE_VALUATION', true),
    workerGroup: read.string('FEDMM_AGGREGATOR_WORKER_GROUP', 'fedmm-aggregator-workers'),
    unmaskThreads: read.int('FEDMM_AGGREGATOR_UNMASK_THREADS', 1, { min: 1, max: 64 }),
  };
}
