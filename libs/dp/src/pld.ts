import FFT from 'fft.js';
import { invalidArgument } from '@fedmm/core';
import { logAdd, logNdtr, ndtr, ndtri } from './special.js';
import { requireCount, requireDelta, requireInRange, type SubsampledGaussianEventLike } from './validate.js';

/** Adjacency of the PMF: REMOVE (mu_upper is the mixture) or ADD (mu_lower is the mixture). */
export type Adjacency = 'remove' | 'add';

export interface PldOptions {
  /** Privacy losses are rounded to integer multiples of this; dp_accounting's default is 1e-4. */
  readonly valueDiscretizationInterval?: number;
  /** ln of the noise mass cut off when building one PMF (dp_accounting: -50). */
  readonly logMassTruncationBound?: number;
  /** Mass that may be dropped from each tail per composition (dp_accounting: 1e-15), counted pessimistically. */
  readonly tailMassTruncation?: number;
}

/**
 * The privacy loss of the Poisson-subsampled Gaussian for one adjacency, sensitivity 1.
 * REMOVE: mu_upper = (1-q) N(0,s^2) + q N(-1,s^2), mu_lower = N(0,s^2);
 * ADD:    mu_upper = N(0,s^2), mu_lower = (1-q) N(0,s^2) + q N(1,s^2).
 * The loss is decreasing in x, which the hockey-stick formula below relies on.
 */
class SubsampledGaussianLoss {
  constructor(
    readonly sigma: number,
    readonly q: number,
    readonly adjacency: Adjacency,
  ) {}

  private lossNoSamplingRemove(x: number): number {
    return (-0.5 - x) / (this.sigma * this.sigma);
  }

  private inverseNoSamplingRemove(loss: number): number {
    return -0.5 - loss * this.sigma * this.sigma;
  }

  private lossRemove(x: number): number {
    const l = this.lossNoSamplingRemove(x);
    if (this.q === 1) return l;
    return logAdd(Math.log(this.q) + l, Math.log1p(-this.q));
  }

  privacyLoss(x: number): number {
    return this.adjacency === 'remove' ? this.lossRemove(x) : -this.lossRemove(-x);
  }

  /** Largest x whose privacy loss is at least `loss`. */
  inversePrivacyLoss(loss: number): number {
    const q = this.q;
    if (this.adjacency === 'remove') {
      if (q === 1) return this.inverseNoSamplingRemove(loss);
      // loss = log(q e^L + 1 - q)  =>  L = loss + log1p(-(1-q) e^-loss) - log q.
      const inner = Math.log1p(-(1 - q) * Math.exp(-loss));
      return this.inverseNoSamplingRemove(loss + inner - Math.log(q));
    }
    if (q === 1) return 1 + this.inverseNoSamplingRemove(loss);
    // loss = -log(q e^-L + 1 - q)  =>  -L = -loss + log1p(-(1-q) e^loss) - log q.
    const inner = Math.log1p(-(1 - q) * Math.exp(loss));
    return 1 + this.inverseNoSamplingRemove(-(-loss + inner - Math.log(q)));
  }

  private muUpperCdf(x: number): number {
    const s = this.sigma;
    if (this.adjacency === 'add') return ndtr(x / s);
    if (this.q === 1) return ndtr((x + 1) / s);
    return (1 - this.q) * ndtr(x / s) + this.q * ndtr((x + 1) / s);
  }

  private muLowerLogCdf(x: number): number {
    const s = this.sigma;
    if (this.adjacency === 'remove') return logNdtr(x / s);
    if (this.q === 1) return logNdtr((x - 1) / s);
    return logAdd(Math.log1p(-this.q) + logNdtr(x / s), Math.log(this.q) + logNdtr((x - 1) / s));
  }

  /** Exact hockey-stick divergence delta(epsilon) of the continuous mechanism. */
  deltaForEpsilon(eps: number): number {
    const q = this.q;
    if (q < 1 && this.adjacency === 'add' && eps >= -Math.log1p(-q)) return 0;
    if (q < 1 && this.adjacency === 'remove' && eps <= Math.log1p(-q)) return -Math.expm1(eps);
    const x = this.inversePrivacyLoss(eps);
    const d = this.muUpperCdf(x) - Math.exp(eps + this.muLowerLogCdf(x));
    return Math.min(1, Math.max(0, d));
  }

  /** [lowerX, upperX] outside of which the noise mass is below exp(logMassTruncationBound). */
  truncation(logMassTruncationBound: number): { lowerX: number; upperX: number } {
    let lowerX = this.sigma * ndtri(0.5 * Math.exp(logMassTruncationBound));
    let upperX = -lowerX;
    if (this.adjacency === 'add') upperX += 1;
    else lowerX -= 1;
    return { lowerX, upperX };
  }
}

/** A privacy-loss PMF on the grid lowerIndex*d, (lowerIndex+1)*d, ... plus a mass at +infinity. */
export class PldPmf {
  constructor(
    readonly discretization: number,
    readonly lowerIndex: number,
    readonly probs: Float64Array,
    readonly infinityMass: number,
  ) {}

  /** delta(eps) = inf mass + sum over losses > eps of (1 - e^(eps - loss)) p. */
  getDeltaForEpsilon(epsilon: number): number {
    let delta = this.infinityMass;
    const d = this.discretization;
    for (let i = this.probs.length - 1; i >= 0; i -= 1) {
      const loss = (this.lowerIndex + i) * d;
      if (loss <= epsilon) break;
      delta += -Math.expm1(epsilon - loss) * (this.probs[i] as number);
    }
    return delta;
  }

  /** Smallest epsilon >= 0 whose hockey-stick divergence is at most delta (Infinity if none). */
  getEpsilonForDelta(delta: number): number {
    if (this.infinityMass > delta) return Number.POSITIVE_INFINITY;
    let massUpper = this.infinityMass;
    let massLower = 0;
    const d = this.discretization;
    for (let i = this.probs.length - 1; i >= 0; i -= 1) {
      const loss = (this.lowerIndex + i) * d;
      if (massUpper > delta && massLower > 0 && Math.log((massUpper - delta) / massLower) >= loss) break;
      const p = this.probs[i] as number;
      massUpper += p;
      massLower += Math.exp(-loss) * p;
      if (massUpper >= delta && massLower === 0) return Math.max(0, loss);
    }
    if (massUpper <= massLower + delta) return 0;
    return Math.log((massUpper - delta) / massLower);
  }
}

/** Pessimistic connect-the-dots PMF (Doroshenko et al. 2022, Alg. 1) for a fixed-gap epsilon grid. */
function connectDotsFixedGap(d: number, lower: number, deltas: Float64Array): PldPmf {
  const n = deltas.length;
  if (n === 1) return new PldPmf(d, lower, Float64Array.of(1 - (deltas[0] as number)), deltas[0] as number);
  // Hockey-stick divergence is non-increasing; enforce it against rounding noise.
  for (let i = 1; i < n; i += 1) deltas[i] = Math.min(deltas[i] as number, deltas[i - 1] as number);
  const probs = new Float64Array(n);
  const em1 = Math.expm1(d);
  const e = Math.exp(d);
  const diff = (i: number): number => (deltas[i + 1] as number) - (deltas[i] as number);
  probs[0] = 1 - (deltas[0] as number) + diff(0) / em1;
  for (let i = 1; i < n - 1; i += 1) probs[i] = (diff(i) - diff(i - 1) * e) / em1;
  probs[n - 1] = diff(n - 2) / Math.expm1(-d);
  for (let i = 0; i < n; i += 1) if (!((probs[i] as number) > 0)) probs[i] = 0;
  return new PldPmf(d, lower, probs, deltas[n - 1] as number);
}

function gaussianPmf(sigma: number, q: number, adjacency: Adjacency, d: number, logMassTruncationBound: number): PldPmf {
  const loss = new SubsampledGaussianLoss(sigma, q, adjacency);
  const { lowerX, upperX } = loss.truncation(logMassTruncationBound);
  const epsUpper = loss.privacyLoss(lowerX);
  const epsLower = loss.privacyLoss(upperX);
  const lower = Math.floor(epsLower / d);
  const upper = Math.ceil(epsUpper / d);
  const n = upper - lower + 1;
  if (!Number.isFinite(n) || n > 50_000_000) {
    throw invalidArgument(
      `PLD grid for noise multiplier ${sigma} would need ${n} points; raise valueDiscretizationInterval or the noise multiplier`,
    );
  }
  const deltas = new Float64Array(n);
  for (let i = 0; i < n; i += 1) deltas[i] = loss.deltaForEpsilon((lower + i) * d);
  return connectDotsFixedGap(d, lower, deltas);
}

const fftCache = new Map<number, FFT>();

// Twiddle tables are costly to build; accountants reuse a handful of sizes.
function fftOfSize(size: number): FFT {
  let f = fftCache.get(size);
  if (f === undefined) {
    if (fftCache.size > 8) fftCache.clear();
    f = new FFT(size);
    fftCache.set(size, f);
  }
  return f;
}

function nextPow2(n: number): number {
  let p = 2;
  while (p < n) p *= 2;
  return p;
}

/** Truncates each tail by at most `truncation / 2`; the left tail joins the first bin, the right goes to infinity. */
function truncateTails(probs: Float64Array, truncation: number): { offset: number; probs: Float64Array; rightMass: number } {
  if (truncation === 0) return { offset: 0, probs, rightMass: 0 };
  const half = truncation / 2;
  let left = 0;
  let s = 0;
  while (left < probs.length && s + (probs[left] as number) <= half) s += probs[left++] as number;
  let right = probs.length;
  let t = 0;
  while (right > 0 && t + (probs[right - 1] as number) <= half) t += probs[--right] as number;
  right = Math.max(right, left + 1);
  let leftMass = 0;
  for (let i = 0; i < left; i += 1) leftMass += probs[i] as number;
  let rightMass = 0;
  for (let i = right; i < probs.length; i += 1) rightMass += probs[i] as number;
  const out = probs.slice(left, right);
  out[0] = (out[0] as number) + leftMass;
  return { offset: left, probs: out, rightMass };
}

/** Chernoff bounds on the support of the num-fold self-convolution outside of which mass is <= truncation. */
function selfConvolveBounds(probs: Float64Array, num: number, truncation: number): { lo: number; hi: number } {
  let hi = (probs.length - 1) * num;
  let lo = 0;
  if (truncation === 0) return { lo, hi };
  const len = probs.length;
  for (let k = -20; k <= 20; k += 1) {
    if (k === 0) continue;
    const order = k / len;
    // log E[exp(order * index)] by a stable log-sum-exp.
    let m = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < len; i += 1) if ((probs[i] as number) > 0) m = Math.max(m, i * order);
    let acc = 0;
    for (let i = 0; i < len; i += 1) {
      const p = probs[i] as number;
      if (p > 0) acc += p * Math.exp(i * order - m);
    }
    const logMgf = m + Math.log(acc);
    const bound = (num * logMgf + Math.log(2 / truncation)) / order;
    if (!Number.isFinite(bound)) continue;
    if (order > 0) hi = Math.min(hi, Math.ceil(bound));
    else lo = Math.max(lo, Math.floor(bound));
  }
  return { lo, hi };
}

function fftOf(fft: FFT, real: Float64Array): Float64Array {
  const input = new Float64Array(2 * fft.size);
  for (let i = 0; i < real.length; i += 1) input[2 * i] = real[i] as number;
  const out = new Float64Array(2 * fft.size);
  fft.transform(out, input);
  return out;
}

function inverseReal(fft: FFT, spectrum: Float64Array): Float64Array {
  const out = new Float64Array(2 * fft.size);
  fft.inverseTransform(out, spectrum);
  const real = new Float64Array(fft.size);
  for (let i = 0; i < fft.size; i += 1) real[i] = out[2 * i] as number;
  return real;
}

/** PMF of the num-fold composition, by one FFT raised to the num-th power (dp_accounting `self_convolve`). */
export function selfComposePmf(pmf: PldPmf, num: number, tailMassTruncation: number): PldPmf {
  if (num === 1) return pmf;
  const { lo, hi } = selfConvolveBounds(pmf.probs, num, tailMassTruncation);
  const outLen = hi - lo + 1;
  const fft = fftOfSize(nextPow2(Math.max(outLen, pmf.probs.length)));
  const spec = fftOf(fft, pmf.probs);
  for (let i = 0; i < fft.size; i += 1) {
    const re = spec[2 * i] as number;
    const im = spec[2 * i + 1] as number;
    // z^num in polar form; |z| <= 1 for a probability vector so this cannot overflow.
    const mag = Math.exp(num * 0.5 * Math.log(re * re + im * im));
    const ang = num * Math.atan2(im, re);
    spec[2 * i] = mag * Math.cos(ang);
    spec[2 * i + 1] = mag * Math.sin(ang);
  }
  const conv = inverseReal(fft, spec);
  // The DFT wraps modulo its size; read the window [lo, hi].
  const probs = new Float64Array(outLen);
  for (let i = 0; i < outLen; i += 1) probs[i] = Math.max(0, conv[(lo + i) % fft.size] as number);
  const infinity = tailMassTruncation - Math.expm1(num * Math.log1p(-pmf.infinityMass));
  return new PldPmf(pmf.discretization, pmf.lowerIndex * num + lo, probs, Math.min(1, infinity));
}

/** PMF of the composition of two PMFs on the same grid, by FFT convolution with pessimistic tail truncation. */
export function composePmfs(a: PldPmf, b: PldPmf, tailMassTruncation: number): PldPmf {
  if (a.discretization !== b.discretization) {
    throw invalidArgument('PLDs with different discretization intervals cannot be composed; use one interval per accountant');
  }
  const n = a.probs.length + b.probs.length - 1;
  const fft = fftOfSize(nextPow2(n));
  const sa = fftOf(fft, a.probs);
  const sb = fftOf(fft, b.probs);
  for (let i = 0; i < fft.size; i += 1) {
    const ar = sa[2 * i] as number;
    const ai = sa[2 * i + 1] as number;
    const br = sb[2 * i] as number;
    const bi = sb[2 * i + 1] as number;
    sa[2 * i] = ar * br - ai * bi;
    sa[2 * i + 1] = ar * bi + ai * br;
  }
  const conv = inverseReal(fft, sa);
  const full = new Float64Array(n);
  for (let i = 0; i < n; i += 1) full[i] = Math.max(0, conv[i] as number);
  const t = truncateTails(full, tailMassTruncation);
  const inf = a.infinityMass + b.infinityMass - a.infinityMass * b.infinityMass;
  return new PldPmf(a.discretization, a.lowerIndex + b.lowerIndex + t.offset, t.probs, Math.min(1, inf + t.rightMass));
}

/** PMFs for REMOVE and ADD adjacency of one Poisson-subsampled Gaussian step (identical when q = 1). */
export function subsampledGaussianPmfs(
  samplingRate: number,
  noiseMultiplier: number,
  options: PldOptions = {},
): { remove: PldPmf; add: PldPmf } {
  const d = options.valueDiscretizationInterval ?? 1e-4;
  const bound = options.logMassTruncationBound ?? -50;
  const remove = gaussianPmf(noiseMultiplier, samplingRate, 'remove', d, bound);
  const add = samplingRate === 1 ? remove : gaussianPmf(noiseMultiplier, samplingRate, 'add', d, bound);
  return { remove, add };
}

/**
 * Privacy-loss-distribution accountant for Poisson-subsampled Gaussian events under add/remove
 * adjacency: keeps one PMF per adjacency direction and reports the worse of the two, as dp_accounting.
 */
export class PldAccountant {
  readonly valueDiscretizationInterval: number;
  private readonly logMassTruncationBound: number;
  private readonly tailMassTruncation: number;
  private remove: PldPmf | null = null;
  private add: PldPmf | null = null;
  private infinite = false;

  constructor(options: PldOptions = {}) {
    this.valueDiscretizationInterval = options.valueDiscretizationInterval ?? 1e-4;
    this.logMassTruncationBound = options.logMassTruncationBound ?? -50;
    this.tailMassTruncation = options.tailMassTruncation ?? 1e-15;
    requireInRange('valueDiscretizationInterval', this.valueDiscretizationInterval, 1e-7, 1, 'dp_accounting uses 1e-4');
    requireInRange('logMassTruncationBound', this.logMassTruncationBound, -700, -1, 'dp_accounting uses -50');
    requireInRange('tailMassTruncation', this.tailMassTruncation, 0, 1e-3, 'dp_accounting uses 1e-15');
  }

  /** Adds `steps` rounds of the Poisson-subsampled Gaussian. */
  compose(event: SubsampledGaussianEventLike): this {
    requireInRange('samplingRate', event.samplingRate, 0, 1, 'use batch size / dataset size');
    requireInRange('noiseMultiplier', event.noiseMultiplier, 0, Number.MAX_VALUE, 'it is noise std / clipping norm');
    requireCount('steps', event.steps, 'count every noisy aggregation');
    if (event.steps === 0 || event.samplingRate === 0) return this;
    if (event.noiseMultiplier === 0) {
      this.infinite = true;
      return this;
    }
    const opts = {
      valueDiscretizationInterval: this.valueDiscretizationInterval,
      logMassTruncationBound: this.logMassTruncationBound,
    };
    const single = subsampledGaussianPmfs(event.samplingRate, event.noiseMultiplier, opts);
    const rem = selfComposePmf(single.remove, event.steps, this.tailMassTruncation);
    const add = single.add === single.remove ? rem : selfComposePmf(single.add, event.steps, this.tailMassTruncation);
    this.remove = this.remove === null ? rem : composePmfs(this.remove, rem, this.tailMassTruncation);
    this.add = this.add === null ? add : composePmfs(this.add, add, this.tailMassTruncation);
    return this;
  }

  /** Delta at `epsilon`: the larger of the REMOVE and ADD hockey-stick divergences. */
  getDeltaForEpsilon(epsilon: number): number {
    if (!(epsilon >= 0)) throw invalidArgument(`epsilon must be >= 0, got ${String(epsilon)}`);
    if (this.infinite) return 1;
    if (this.remove === null || this.add === null) return 0;
    return Math.max(this.remove.getDeltaForEpsilon(epsilon), this.add.getDeltaForEpsilon(epsilon));
  }

  /** Smallest epsilon at `delta`: the larger over the two adjacency directions. */
  getEpsilonForDelta(delta: number): number {
    requireDelta(delta);
    if (this.infinite) return Number.POSITIVE_INFINITY;
    if (this.remove === null || this.add === null) return 0;
    return Math.max(this.remove.getEpsilonForDelta(delta), this.add.getEpsilonForDelta(delta));
  }

  /** Alias of getEpsilonForDelta, matching RdpAccountant. */
  getEpsilon(delta: number): number {
    return this.getEpsilonForDelta(delta);
  }
}
