import { invalidArgument } from '@fedmm/core';
import type { Compute } from '../compute/compute.js';
import { cpuCompute } from '../compute/cpu-compute.js';
import type { ShardAccumulator, ShardSpec, Strategy, StrategyOptions } from '../types.js';
import { CoordinateWiseAccumulator } from './coordinate-wise.js';

/** Options of the trimmed mean. */
export interface TrimmedMeanOptions extends StrategyOptions {
  /** Fraction cut from each end, in [0, 0.5): floor(beta * n) values of n holders per side. */
  readonly beta: number;
}

/**
 * Coordinate-wise trimmed mean (Yin et al. 2018; Flower's FedTrimmedAvg): unweighted, each
 * tensor over its holders. Holds all K clients' values of the shard: memory O(K x shard).
 */
export class TrimmedMean implements Strategy {
  readonly name = 'trimmed-mean';
  readonly holdsAllValues = true;
  readonly coordination = 'none' as const;
  readonly beta: number;
  private readonly compute: Compute;

  constructor(options: TrimmedMeanOptions) {
    if (!(options.beta >= 0 && options.beta < 0.5)) {
      throw invalidArgument(`trimmed mean beta must be in [0, 0.5), got ${options.beta}; it is the fraction of clients cut from each end`);
    }
    this.beta = options.beta;
    this.compute = options.compute ?? cpuCompute;
  }

  clientConfig(): Readonly<Record<string, number>> {
    return {};
  }

  createShardAccumulator(spec: ShardSpec): ShardAccumulator {
    return new CoordinateWiseAccumulator(spec, (rows, start, length, out) =>
      this.compute.coordinateTrimmedMean(rows, Math.floor(this.beta * rows.length), start, length, out),
    );
  }
}
