import { failedPrecondition, invalidArgument } from '@fedmm/core';
import { LinearAccumulator } from '../linear-accumulator.js';
import { applyStep, forHeld } from '../server-step.js';
import type { ShardMean } from '../weighted-mean.js';
import type { CompiledShard } from '../shard-spec.js';
import type {
  FinishContext, LinearShardAccumulator, LinearStrategy, ServerOptimizerAlgorithm, ServerOptimizerState, ShardSpec,
} from '../types.js';
import type { FedAvgOptions } from './fedavg.js';

/** Hyper-parameters of the adaptive server optimizers (Reddi et al. 2021). */
export interface FedOptOptions extends FedAvgOptions {
  /** Server learning rate. */
  readonly eta?: number;
  /** Client learning rate, sent to the clients as `learning_rate`. */
  readonly etaL?: number;
  readonly beta1?: number;
  readonly beta2?: number;
  /** Adaptivity: added to sqrt(v) in the denominator. */
  readonly tau?: number;
}

export interface FedOptParams {
  readonly eta: number;
  readonly etaL: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly tau: number;
}

/** Advances m and v over [start, end) and writes the step; `t` is the 1-based step number. */
export type MomentUpdate = (
  delta: Float32Array, m: Float32Array, v: Float32Array, step: Float32Array, start: number, end: number, p: FedOptParams, t: number,
) => void;

function checkParams(name: string, p: FedOptParams): FedOptParams {
  const ok =
    p.eta > 0 && Number.isFinite(p.eta) && p.etaL > 0 && Number.isFinite(p.etaL) &&
    p.beta1 >= 0 && p.beta1 < 1 && p.beta2 >= 0 && p.beta2 < 1 && p.tau > 0 && Number.isFinite(p.tau);
  if (!ok) {
    throw invalidArgument(
      `${name} needs eta > 0, eta_l > 0, 0 <= beta1 < 1, 0 <= beta2 < 1 and tau > 0; got ${JSON.stringify(p)}`,
      { ...p },
    );
  }
  return Object.freeze({ ...p });
}

/**
 * Shared body of FedAdam, FedYogi and FedAdagrad: the example-weighted mean update is the
 * pseudo-gradient; the per-shard moments live in a ServerOptimizerState the worker persists.
 * Segments nobody sent this round keep their value and their moments.
 */
export abstract class FedOpt implements LinearStrategy {
  abstract readonly name: string;
  abstract readonly algorithm: ServerOptimizerAlgorithm;
  readonly holdsAllValues = false as const;
  readonly coordination = 'none' as const;
  readonly params: FedOptParams;

  protected constructor(
    private readonly options: FedOptOptions,
    defaults: FedOptParams,
    private readonly update: MomentUpdate,
  ) {
    this.params = checkParams(new.target.name, {
      eta: options.eta ?? defaults.eta,
      etaL: options.etaL ?? defaults.etaL,
      beta1: options.beta1 ?? defaults.beta1,
      beta2: options.beta2 ?? defaults.beta2,
      tau: options.tau ?? defaults.tau,
    });
  }

  clientConfig(): Readonly<Record<string, number>> {
    return { learning_rate: this.params.etaL };
  }

  createShardAccumulator(spec: ShardSpec): LinearShardAccumulator {
    return new LinearAccumulator(spec, this.options, (mean, shard, context) => this.serverStep(mean, shard, context));
  }

  private serverStep(mean: ShardMean, shard: CompiledShard, context: FinishContext): Float32Array {
    const state = this.checkState(context.optimizerState, shard.shardLength);
    const m = state.m.slice();
    const v = state.v.slice();
    const step = new Float32Array(shard.shardLength);
    const t = state.step + 1;
    forHeld(shard.segments, mean.held, (start, end) => this.update(mean.mean, m, v, step, start, end, this.params, t));
    // Commit only after every segment succeeded, so a failure leaves the persisted state usable.
    state.m = m;
    state.v = v;
    state.step = t;
    return applyStep(step, context.previous);
  }

  private checkState(state: ServerOptimizerState | undefined, shardLength: number): ServerOptimizerState {
    if (state === undefined) {
      throw failedPrecondition(
        `${this.name} needs the shard's optimizer state in the finish context; start with createServerOptimizerState('${this.algorithm}', ${shardLength}) and persist it between rounds`,
      );
    }
    if (state.algorithm !== this.algorithm || state.m.length !== shardLength || state.v.length !== shardLength) {
      throw failedPrecondition(
        `optimizer state is for ${state.algorithm} over ${state.m.length} elements but this shard runs ${this.algorithm} over ${shardLength}; load the state saved for this task and shard`,
        { algorithm: state.algorithm, length: state.m.length },
      );
    }
    return state;
  }
}
