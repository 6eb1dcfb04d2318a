import type { Compute } from '../compute/compute.js';
import { cpuCompute } from '../compute/cpu-compute.js';
import type { ShardAccumulator, ShardSpec, Strategy, StrategyOptions } from '../types.js';
import { CoordinateWiseAccumulator } from './coordinate-wise.js';

/**
 * Coordinate-wise median (Yin et al. 2018), unweighted, each tensor over its holders.
 * Holds all K clients' values of the shard: memory O(K x shard).
 */
export class CoordinateMedian implements Strategy {
  readonly name = 'median';
  readonly holdsAllValues = true;
  readonly coordination = 'none' as const;
  private readonly compute: Compute;

  constructor(options: StrategyOptions = {}) {
    this.compute = options.compute ?? cpuCompute;
  }

  clientConfig(): Readonly<Record<string, number>> {
    return {};
  }

  createShardAccumulator(spec: ShardSpec): ShardAccumulator {
    return new CoordinateWiseAccumulator(spec, (rows, start, length, out) => this.compute.coordinateMedian(rows, start, length, out));
  }
}
