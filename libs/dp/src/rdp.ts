import { invalidArgument } from '@fedmm/core';
import { binomialSign, logAbsBinomial, logAdd, logErfc, logSub } from './special.js';
import { requireCount, requireDelta, requireInRange } from './validate.js';

/**
 * Opacus's DEFAULT_ALPHAS: 1.1, 1.2, ..., 10.9 followed by the integers 12..63.
 * Fine fractional orders matter for large epsilon / few steps; the integers cover the
 * small-epsilon regime. Computed as 1 + x / 10 exactly like `[1 + x / 10.0 for x in range(1, 100)]`.
 */
export const DEFAULT_RDP_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 52 }, (_, i) => 12 + i),
]);

/** dp_accounting's DEFAULT_RDP_ORDERS: the Opacus grid plus 11 and 128, 256, 512, 1024. */
export const DP_ACCOUNTING_RDP_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 53 }, (_, i) => 11 + i),
  128,
  256,
  512,
  1024,
]);

/**
 * How the fractional-order series treats binomial coefficients of alternating sign.
 * 'exact': signed sum, the series of Mironov, Talwar, Zhang 2019 Sec. 3.3 as Opacus and TF Privacy compute it.
 * 'absolute': sum of absolute values, an upper bound, as dp_accounting >= 0.4 computes it.
 */
export type FractionalSeries = 'exact' | 'absolute';

/** One homogeneous stretch of DP-SGD / DP-FedAvg: `steps` rounds of the Poisson-subsampled Gaussian. */
export interface SubsampledGaussianEvent {
  readonly samplingRate: number;
  readonly noiseMultiplier: number;
  readonly steps: number;
}

export interface ComputeRdpParams extends SubsampledGaussianEvent {
  readonly orders?: readonly number[];
  readonly fractionalSeries?: FractionalSeries;
}

export interface EpsilonAndOrder {
  readonly epsilon: number;
  readonly order: number;
}

const MAX_FRACTIONAL_TERMS = 1000;
const LOG_HALF = Math.log(0.5);

function logAForIntegerOrder(q: number, sigma: number, alpha: number): number {
  let logA = Number.NEGATIVE_INFINITY;
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  for (let i = 0; i <= alpha; i += 1) {
    const logCoef = logAbsBinomial(alpha, i) + i * logQ + (alpha - i) * log1mQ;
    logA = logAdd(logA, logCoef + (i * i - i) / twoSigma2);
  }
  return logA;
}

function logAForFractionalOrder(q: number, sigma: number, alpha: number, series: FractionalSeries): number {
  // Two series for the integrals over (-inf, z0] and [z0, +inf), in log space.
  let logA0 = Number.NEGATIVE_INFINITY;
  let logA1 = Number.NEGATIVE_INFINITY;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const twoSigma2 = 2 * sigma * sigma;
  const sqrt2Sigma = Math.SQRT2 * sigma;
  let lastS0 = Number.NEGATIVE_INFINITY;
  let lastS1 = Number.NEGATIVE_INFINITY;
  let signed = series === 'exact';
  for (let i = 0; i < MAX_FRACTIONAL_TERMS; i += 1) {
    const logCoef = logAbsBinomial(alpha, i);
    const j = alpha - i;
    const logT0 = logCoef + i * logQ + j * log1mQ;
    const logT1 = logCoef + j * logQ + i * log1mQ;
    const logE0 = LOG_HALF + logErfc((i - z0) / sqrt2Sigma);
    const logE1 = LOG_HALF + logErfc((z0 - j) / sqrt2Sigma);
    const logS0 = logT0 + (i * i - i) / twoSigma2 + logE0;
    const logS1 = logT1 + (j * j - j) / twoSigma2 + logE1;
    if (signed && binomialSign(alpha, i) < 0) {
      const next0 = logSub(logA0, logS0);
      const next1 = logSub(logA1, logS1);
      if (Number.isNaN(next0) || Number.isNaN(next1)) {
        // Cancellation went below zero in floating point: fall back to the absolute-value bound,
        // which can only overstate privacy loss.
        signed = false;
        logA0 = logAdd(logA0, logS0);
        logA1 = logAdd(logA1, logS1);
      } else {
        logA0 = next0;
        logA1 = next1;
      }
    } else {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    }
    const total = logAdd(logA0, logA1);
    if (logS0 < lastS0 && logS1 < lastS1 && Math.max(logS0, logS1) < total - 30) return total;
    lastS0 = logS0;
    lastS1 = logS1;
  }
  // Not converged: exclude this order by reporting infinite RDP (never understates loss).
  return Number.POSITIVE_INFINITY;
}

/** log(A_alpha) of the Poisson-subsampled Gaussian (Mironov, Talwar, Zhang 2019), 0 < q < 1. */
export function computeLogA(q: number, sigma: number, alpha: number, series: FractionalSeries = 'exact'): number {
  return Number.isInteger(alpha) ? logAForIntegerOrder(q, sigma, alpha) : logAForFractionalOrder(q, sigma, alpha, series);
}

function rdpOneStep(q: number, sigma: number, alpha: number, series: FractionalSeries): number {
  if (q === 0) return 0;
  if (sigma === 0 || alpha === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
  if (q === 1) return alpha / (2 * sigma * sigma);
  // A_alpha >= 1, so log A_alpha < 0 is rounding noise (|error| ~ 1e-16 when A is within 1e-16 of 1).
  return Math.max(0, computeLogA(q, sigma, alpha, series)) / (alpha - 1);
}

function validateOrders(orders: readonly number[]): void {
  if (orders.length === 0) throw invalidArgument('orders must not be empty; omit it to use DEFAULT_RDP_ORDERS');
  for (const a of orders) {
    if (typeof a !== 'number' || Number.isNaN(a) || a <= 1) {
      throw invalidArgument(`every RDP order must be > 1, got ${String(a)}; use DEFAULT_RDP_ORDERS`, { order: a });
    }
  }
}

function validateEvent(e: SubsampledGaussianEvent): void {
  requireInRange('samplingRate', e.samplingRate, 0, 1, 'use batch size / dataset size (or clients per round / population)');
  requireInRange('noiseMultiplier', e.noiseMultiplier, 0, Number.MAX_VALUE, 'it is noise std / clipping norm');
  requireCount('steps', e.steps, 'count every noisy aggregation');
}

/** RDP at each order of `steps` compositions of the Poisson-subsampled Gaussian mechanism. */
export function computeRdp(params: ComputeRdpParams): Float64Array {
  validateEvent(params);
  const orders = params.orders ?? DEFAULT_RDP_ORDERS;
  validateOrders(orders);
  const series = params.fractionalSeries ?? 'exact';
  const out = new Float64Array(orders.length);
  for (let k = 0; k < orders.length; k += 1) {
    const r = rdpOneStep(params.samplingRate, params.noiseMultiplier, orders[k] as number, series);
    // 0 * Infinity would be NaN; zero steps spend nothing.
    out[k] = params.steps === 0 ? 0 : r * params.steps;
  }
  return out;
}

/**
 * Converts RDP curves to (epsilon, delta)-DP with the bound of Balle et al. 2020 (Thm. 21) /
 * Canonne, Kamath, Steinke 2020 (Prop. 12): eps = rdp + log1p(-1/a) - log(delta * a) / (a - 1),
 * minimised over orders, as dp_accounting `compute_epsilon` and Opacus `get_privacy_spent`.
 */
export function rdpToEpsilon(orders: readonly number[], rdp: ArrayLike<number>, delta: number): EpsilonAndOrder {
  requireDelta(delta);
  if (orders.length !== rdp.length) {
    throw invalidArgument(`orders (${orders.length}) and rdp (${rdp.length}) must have the same length`);
  }
  let best = Number.POSITIVE_INFINITY;
  let bestOrder = orders[0] ?? Number.NaN;
  for (let k = 0; k < orders.length; k += 1) {
    const a = orders[k] as number;
    const r = rdp[k] as number;
    let eps: number;
    if (Number.isNaN(r)) continue;
    if (r < 0) eps = 0;
    // KL bound: delta <= sqrt(1 - exp(-KL)) already certifies epsilon = 0.
    else if (delta * delta + Math.expm1(-r) > 0) eps = 0;
    // The bound is unstable as a -> 1 and useless there.
    else if (a > 1.01) eps = r + Math.log1p(-1 / a) - Math.log(delta * a) / (a - 1);
    else eps = Number.POSITIVE_INFINITY;
    if (eps < best) {
      best = eps;
      bestOrder = a;
    }
  }
  return { epsilon: Math.max(0, best), order: bestOrder };
}

/** Smallest delta certified at `epsilon` by the same RDP-to-DP conversion, with its order. */
export function rdpToDelta(orders: readonly number[], rdp: ArrayLike<number>, epsilon: number): { delta: number; order: number } {
  if (!(epsilon >= 0)) throw invalidArgument(`epsilon must be >= 0, got ${String(epsilon)}`);
  let bestLog = Number.POSITIVE_INFINITY;
  let bestOrder = orders[0] ?? Number.NaN;
  for (let k = 0; k < orders.length; k += 1) {
    const a = orders[k] as number;
    const r = rdp[k] as number;
    let logDelta: number;
    if (r <= 0) logDelta = Number.NEGATIVE_INFINITY;
    else logDelta = 0.5 * Math.log1p(-Math.exp(-r));
    if (a > 1.01) logDelta = Math.min(logDelta, (a - 1) * (r - epsilon + Math.log1p(-1 / a)) - Math.log(a));
    if (logDelta < bestLog) {
      bestLog = logDelta;
      bestOrder = a;
    }
  }
  return { delta: Math.min(Math.exp(bestLog), 1), order: bestOrder };
}

export interface RdpAccountantOptions {
  readonly orders?: readonly number[];
  readonly fractionalSeries?: FractionalSeries;
}

/** Accumulates RDP over heterogeneous Poisson-subsampled Gaussian events (add/remove adjacency). */
export class RdpAccountant {
  readonly orders: readonly number[];
  private readonly series: FractionalSeries;
  private readonly rdp: Float64Array;

  constructor(options: RdpAccountantOptions = {}) {
    const orders = options.orders ?? DEFAULT_RDP_ORDERS;
    validateOrders(orders);
    this.orders = Object.freeze([...orders]);
    this.series = options.fractionalSeries ?? 'exact';
    this.rdp = new Float64Array(orders.length);
  }

  /** Adds `steps` rounds at the given sampling rate and noise multiplier. */
  compose(event: SubsampledGaussianEvent): this {
    const add = computeRdp({ ...event, orders: this.orders, fractionalSeries: this.series });
    for (let k = 0; k < add.length; k += 1) this.rdp[k] = (this.rdp[k] as number) + (add[k] as number);
    return this;
  }

  /** A copy of the accumulated RDP curve, aligned with `orders`. */
  getRdp(): Float64Array {
    return Float64Array.from(this.rdp);
  }

  /** Epsilon at `delta` with the order that attains it. */
  getEpsilonAndOrder(delta: number): EpsilonAndOrder {
    return rdpToEpsilon(this.orders, this.rdp, delta);
  }

  /** Epsilon spent so far at `delta`. */
  getEpsilon(delta: number): number {
    return this.getEpsilonAndOrder(delta).epsilon;
  }

  /** Delta spent so far at `epsilon`. */
  getDelta(epsilon: number): number {
    return rdpToDelta(this.orders, this.rdp, epsilon).delta;
  }
}
