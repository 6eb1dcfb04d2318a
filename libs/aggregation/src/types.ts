import type { Compute } from './compute/compute.js';

/** One tensor's piece inside a shard: shard coordinates [start, start + length) belong to `tensor`. */
export interface ShardSegment {
  readonly tensor: string;
  readonly start: number;
  readonly length: number;
}

/** The geometry of one shard of the flattened parameter vector. */
export interface ShardSpec {
  readonly shardLength: number;
  /** Sorted, non-overlapping, covering [0, shardLength); defaults to one segment over the whole shard. */
  readonly segments?: readonly ShardSegment[];
}

/** A hook that may change the aggregated mean update in place before the server step (DP noise). */
export type PerturbFn = (meanUpdate: Float32Array, segments: readonly ShardSegment[]) => void;

/** What a worker knows at seal time about the shard it finishes. */
export interface FinishContext {
  /** The shard's global parameters of the previous version; without it the result is the step alone. */
  readonly previous?: Float32Array;
  /** Per-shard optimizer state; required by the server-optimizer strategies, advanced in place. */
  readonly optimizerState?: ServerOptimizerState;
  /** Called on the aggregated mean update before the server step (e.g. to add DP noise). */
  readonly perturb?: PerturbFn;
}

/** Server optimizer algorithms of Reddi et al. 2021. */
export type ServerOptimizerAlgorithm = 'fedadam' | 'fedyogi' | 'fedadagrad';

/** First and second moments of one shard for a server optimizer; persisted by the worker as bytes. */
export interface ServerOptimizerState {
  readonly algorithm: ServerOptimizerAlgorithm;
  /** Number of server steps applied so far. */
  step: number;
  m: Float32Array;
  v: Float32Array;
}

/** Accumulates the K clients' chunks of one (round, shard) and produces the shard's new values. */
export interface ShardAccumulator {
  /**
   * Adds a client's chunk. `values` is used without copying and may be read until finish():
   * the caller must not reuse its buffer. `weight` is the client's number of examples.
   */
  add(clientId: string, elementOffset: number, values: Float32Array, weight: number): void;
  /** Seals the shard: returns previous + step (or the step alone when no previous is given). */
  finish(context?: FinishContext): Float32Array;
  /** Clients that sent at least one chunk, in arrival order. */
  readonly clientIds: readonly string[];
}

/** A linear accumulator can also take a chunk multiplied by a factor, without copying it. */
export interface LinearShardAccumulator extends ShardAccumulator {
  /** Adds `scale * values` with the client's example weight; used by update-norm clipping. */
  addScaled(clientId: string, elementOffset: number, values: Float32Array, weight: number, scale: number): void;
}

/** Squared distances between the clients' vectors restricted to one shard (row-major, K x K). */
export interface PartialDistances {
  readonly clientIds: readonly string[];
  readonly squared: Float64Array;
  /** Each client's squared norm in this shard: its distance to a client that sent nothing here. */
  readonly squaredNorms: Float64Array;
}

/** Accumulator of Krum-like strategies: the selection needs distances over the whole update. */
export interface SelectionShardAccumulator extends ShardAccumulator {
  /** Phase 1: this shard's share of the pairwise squared distances. */
  partialDistances(): PartialDistances;
  /** Phase 2: the example-weighted mean over the selected clients (chosen from all shards' distances). */
  finishWithSelection(selected: readonly string[], context?: FinishContext): Float32Array;
}

/** Accumulator of norm clipping: the scale factors need each client's norm over the whole update. */
export interface ClippingShardAccumulator extends ShardAccumulator {
  /** Phase 1: each client's squared L2 norm restricted to this shard. */
  partialSquaredNorms(): ReadonlyMap<string, number>;
  /** Phase 2: aggregate with each client's update multiplied by its scale factor. */
  finishWithScales(scales: ReadonlyMap<string, number>, context?: FinishContext): Float32Array;
}

/** One aggregation rule. */
export interface Strategy {
  readonly name: string;
  /** True when the accumulator keeps all K clients' values of the shard (memory O(K x shard)). */
  readonly holdsAllValues: boolean;
  /** Which two-phase protocol the coordinator must run across shards, if any. */
  readonly coordination: 'none' | 'distances' | 'norms';
  /** Settings the clients need for this strategy (e.g. FedProx's proximal_mu). */
  clientConfig(): Readonly<Record<string, number>>;
  createShardAccumulator(spec: ShardSpec): ShardAccumulator;
}

/** A strategy whose aggregate is a weighted mean (memory O(shard) whatever K). */
export interface LinearStrategy extends Strategy {
  readonly holdsAllValues: false;
  createShardAccumulator(spec: ShardSpec): LinearShardAccumulator;
}

/** Options every strategy accepts. */
export interface StrategyOptions {
  /** Kernels to run on; defaults to the typed-array CPU kernels. */
  readonly compute?: Compute;
}
