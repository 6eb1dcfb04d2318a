import { LinearAccumulator } from '../linear-accumulator.js';
import { applyStep } from '../server-step.js';
import type { LinearShardAccumulator, LinearStrategy, ShardSpec } from '../types.js';
import type { WeightedMeanOptions } from '../weighted-mean.js';

/** Options of FedAvg. */
export type FedAvgOptions = WeightedMeanOptions;

/**
 * FedAvg (McMahan et al. 2017): the example-weighted mean of the clients' updates, each tensor
 * over the clients that sent it. Memory O(shard) whatever the number of clients.
 */
export class FedAvg implements LinearStrategy {
  readonly name: string = 'fedavg';
  readonly holdsAllValues = false as const;
  readonly coordination = 'none' as const;

  constructor(protected readonly options: FedAvgOptions = {}) {}

  clientConfig(): Readonly<Record<string, number>> {
    return {};
  }

  createShardAccumulator(spec: ShardSpec): LinearShardAccumulator {
    return new LinearAccumulator(spec, this.options, (mean, _shard, context) => applyStep(mean.mean, context.previous));
  }
}
