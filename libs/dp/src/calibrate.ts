import { failedPrecondition } from '@fedmm/core';
import { PldAccountant, type PldOptions } from './pld.js';
import { RdpAccountant, type RdpAccountantOptions } from './rdp.js';
import { requireCount, requireDelta, requireInRange } from './validate.js';

export type AccountantKind = 'rdp' | 'pld';

export interface EpsilonForParams {
  readonly samplingRate: number;
  readonly noiseMultiplier: number;
  readonly steps: number;
  readonly delta: number;
  readonly accountant?: AccountantKind;
  readonly rdp?: RdpAccountantOptions;
  readonly pld?: PldOptions;
}

/** Epsilon spent by `steps` rounds of the Poisson-subsampled Gaussian at `delta`. */
export function epsilonFor(params: EpsilonForParams): number {
  requireDelta(params.delta);
  const event = { samplingRate: params.samplingRate, noiseMultiplier: params.noiseMultiplier, steps: params.steps };
  if ((params.accountant ?? 'rdp') === 'pld') return new PldAccountant(params.pld ?? {}).compose(event).getEpsilonForDelta(params.delta);
  return new RdpAccountant(params.rdp ?? {}).compose(event).getEpsilon(params.delta);
}

export interface CalibrateParams {
  readonly targetEpsilon: number;
  readonly delta: number;
  readonly samplingRate: number;
  readonly steps: number;
  readonly accountant?: AccountantKind;
  /** Absolute precision on the noise multiplier; the result is at most this far above the optimum. */
  readonly tolerance?: number;
  readonly maxNoiseMultiplier?: number;
  readonly rdp?: RdpAccountantOptions;
  readonly pld?: PldOptions;
}

export interface Calibration {
  readonly noiseMultiplier: number;
  readonly epsilon: number;
  readonly evaluations: number;
}

/**
 * Smallest noise multiplier (within `tolerance`) whose epsilon at `delta` is <= targetEpsilon, by
 * bracketing then bisection; epsilon is non-increasing in the noise multiplier, so the returned
 * value always meets the target.
 */
export function calibrateNoiseMultiplier(params: CalibrateParams): Calibration {
  requireInRange('targetEpsilon', params.targetEpsilon, 1e-6, 1e4, 'pass the epsilon budget of the whole training run');
  requireDelta(params.delta);
  requireInRange('samplingRate', params.samplingRate, 0, 1, 'use batch size / dataset size');
  requireCount('steps', params.steps, 'count every noisy aggregation');
  const tolerance = params.tolerance ?? 1e-3;
  requireInRange('tolerance', tolerance, 1e-9, 1, 'e.g. 1e-3');
  const maxSigma = params.maxNoiseMultiplier ?? 1e4;
  let evaluations = 0;
  const eps = (sigma: number): number => {
    evaluations += 1;
    return epsilonFor({ ...params, noiseMultiplier: sigma });
  };
  let hi = 1;
  let epsHi = eps(hi);
  while (epsHi > params.targetEpsilon) {
    if (hi >= maxSigma) {
      throw failedPrecondition(
        `no noise multiplier up to ${maxSigma} reaches epsilon ${params.targetEpsilon} at delta ${params.delta} ` +
          `with sampling rate ${params.samplingRate} over ${params.steps} steps; raise the budget, lower the sampling rate or the steps`,
      );
    }
    hi = Math.min(2 * hi, maxSigma);
    epsHi = eps(hi);
  }
  let lo = 0;
  // Halve downward first so the bisection bracket is tight when the answer is well below 1.
  while (hi - lo > tolerance && lo === 0 && hi > tolerance) {
    const half = hi / 2;
    const e = eps(half);
    if (e <= params.targetEpsilon) {
      hi = half;
      epsHi = e;
    } else {
      lo = half;
    }
  }
  while (hi - lo > tolerance) {
    const mid = 0.5 * (lo + hi);
    const e = eps(mid);
    if (e <= params.targetEpsilon) {
      hi = mid;
      epsHi = e;
    } else {
      lo = mid;
    }
  }
  return { noiseMultiplier: hi, epsilon: epsHi, evaluations };
}

export interface PlanNoiseParams {
  readonly epsilon: number;
  readonly delta: number;
  readonly samplingRate: number;
  readonly steps: number;
  readonly accountant?: AccountantKind;
  readonly tolerance?: number;
}

/** Noise multiplier that meets (epsilon, delta) for the given schedule; the CLI's planning call. */
export function planNoise(params: PlanNoiseParams): number {
  return calibrateNoiseMultiplier({
    targetEpsilon: params.epsilon,
    delta: params.delta,
    samplingRate: params.samplingRate,
    steps: params.steps,
    accountant: params.accountant ?? 'rdp',
    tolerance: params.tolerance ?? 1e-3,
  }).noiseMultiplier;
}
