import type { CompiledShard } from './shard-spec.js';
import { checkPrevious } from './server-step.js';
import type { FinishContext, LinearShardAccumulator, ShardSpec } from './types.js';
import { type ShardMean, WeightedMeanAccumulator, type WeightedMeanOptions } from './weighted-mean.js';

/** Turns the shard's mean update into its new values (identity step for FedAvg, an optimizer otherwise). */
export type MeanStep = (mean: ShardMean, shard: CompiledShard, context: FinishContext) => Float32Array;

/** A linear strategy's accumulator: streaming weighted mean, then the strategy's server step. */
export class LinearAccumulator implements LinearShardAccumulator {
  private readonly core: WeightedMeanAccumulator;

  constructor(spec: ShardSpec, options: WeightedMeanOptions, private readonly step: MeanStep) {
    this.core = new WeightedMeanAccumulator(spec, options);
  }

  get clientIds(): readonly string[] {
    return this.core.participation.clientIds;
  }

  add(clientId: string, elementOffset: number, values: Float32Array, weight: number): void {
    this.core.addScaled(clientId, elementOffset, values, weight, 1);
  }

  addScaled(clientId: string, elementOffset: number, values: Float32Array, weight: number, scale: number): void {
    this.core.addScaled(clientId, elementOffset, values, weight, scale);
  }

  finish(context: FinishContext = {}): Float32Array {
    checkPrevious(context.previous, this.core.shard.shardLength);
    const mean = this.core.finishMean();
    context.perturb?.(mean.mean, this.core.shard.segments);
    return this.step(mean, this.core.shard, context);
  }
}
