export type {
  ClippingShardAccumulator, FinishContext, LinearShardAccumulator, LinearStrategy, PartialDistances, PerturbFn,
  SelectionShardAccumulator, ServerOptimizerAlgorithm, ServerOptimizerState, ShardAccumulator, ShardSegment, ShardSpec,
  Strategy, StrategyOptions,
} from './types.js';
export type { Compute } from './compute/compute.js';
export { cpuCompute, createCpuCompute, type CpuCompute, type CpuComputeOptions } from './compute/cpu-compute.js';
export { createTfjsCompute, type TfModule, type TfTensor } from './compute/tfjs-compute.js';
export { loadCompute, TFJS_NODE_GPU, type ComputeKind, type ModuleImporter } from './compute/load-compute.js';
export { CompiledShard } from './shard-spec.js';
export { WeightedMeanAccumulator, type ShardMean, type WeightedMeanOptions } from './weighted-mean.js';
export {
  createServerOptimizerState, decodeServerOptimizerState, encodeServerOptimizerState,
} from './optimizer-state.js';
export {
  clippingScales, combineSquaredNorms, selectKrum, sumPartialDistances, type GlobalDistances, type KrumSelectOptions,
} from './coordination.js';
export { FedAvg, type FedAvgOptions } from './strategies/fedavg.js';
export { FedProx, type FedProxOptions } from './strategies/fedprox.js';
export { FedOpt, type FedOptOptions, type FedOptParams } from './strategies/fedopt.js';
export { FedAdam } from './strategies/fedadam.js';
export { FedYogi } from './strategies/fedyogi.js';
export { FedAdagrad } from './strategies/fedadagrad.js';
export { CoordinateMedian } from './strategies/median.js';
export { TrimmedMean, type TrimmedMeanOptions } from './strategies/trimmed-mean.js';
export { Krum, type KrumOptions } from './strategies/krum.js';
export { MultiKrum, type MultiKrumOptions } from './strategies/multi-krum.js';
export { NormClipping, type NormClippingOptions } from './strategies/norm-clipping.js';
export { createStrategy, type StrategyConfig } from './create-strategy.js';
