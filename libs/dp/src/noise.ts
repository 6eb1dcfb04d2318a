import { randomBytes, randomFillSync } from 'node:crypto';
import { invalidArgument } from '@fedmm/core';

/** A non-negative rational num/den with den > 0, for exact sampler parameters. */
export interface Rational {
  readonly num: bigint;
  readonly den: bigint;
}

/** The exact value of a finite float64 as a dyadic rational. */
export function rationalFromNumber(x: number): Rational {
  if (!Number.isFinite(x) || x < 0) throw invalidArgument(`expected a finite non-negative number, got ${String(x)}`);
  let den = 1n;
  let v = x;
  // Every float64 is m * 2^e; doubling until integral is exact (at most 1074 times).
  while (!Number.isInteger(v)) {
    v *= 2;
    den *= 2n;
  }
  return { num: BigInt(v), den };
}

function uniformBigIntBelow(n: bigint): bigint {
  if (n <= 0n) throw invalidArgument('uniform range must be positive');
  if (n === 1n) return 0n;
  const bits = (n - 1n).toString(2).length;
  const bytes = Math.ceil(bits / 8);
  const mask = (1n << BigInt(bits)) - 1n;
  for (;;) {
    const buf = randomBytes(bytes);
    let v = 0n;
    for (const b of buf) v = (v << 8n) | BigInt(b);
    v &= mask;
    if (v < n) return v;
  }
}

function bernoulliRational(num: bigint, den: bigint): boolean {
  return uniformBigIntBelow(den) < num;
}

/** Exact Bernoulli(exp(-num/den)) (Canonne, Kamath, Steinke 2020, Alg. 1). */
function bernoulliExpNeg(num: bigint, den: bigint): boolean {
  let n = num;
  while (n > den) {
    if (!bernoulliExpNeg(1n, 1n)) return false;
    n -= den;
  }
  // gamma in [0, 1]: count K until Bernoulli(gamma / K) fails; accept iff K is odd.
  let k = 1n;
  while (bernoulliRational(n, den * k)) k += 1n;
  return k % 2n === 1n;
}

/** Exact discrete Laplace with scale t, P(x) proportional to exp(-|x|/t) (CKS 2020, Alg. 2). */
function discreteLaplaceExact(t: bigint): bigint {
  for (;;) {
    const u = uniformBigIntBelow(t);
    if (!bernoulliExpNeg(u, t)) continue;
    let v = 0n;
    while (bernoulliExpNeg(1n, 1n)) v += 1n;
    const x = u + t * v;
    const negative = bernoulliRational(1n, 2n);
    if (negative && x === 0n) continue;
    return negative ? -x : x;
  }
}

function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = BigInt(Math.floor(Math.sqrt(Number(n))));
  while (x * x > n) x -= 1n;
  while ((x + 1n) * (x + 1n) <= n) x += 1n;
  return x;
}

/**
 * `count` exact samples of the discrete Gaussian N_Z(0, sigma^2), P(x) proportional to
 * exp(-x^2 / (2 sigma^2)) on the integers (CKS 2020, Alg. 3): rational arithmetic only, randomness
 * from node:crypto. No floating point touches the output distribution.
 */
export function sampleDiscreteGaussianExact(sigmaSquared: number | Rational, count: number): bigint[] {
  const s2 = typeof sigmaSquared === 'number' ? rationalFromNumber(sigmaSquared) : sigmaSquared;
  if (s2.den <= 0n || s2.num <= 0n) throw invalidArgument('sigma^2 must be a positive rational');
  if (!Number.isSafeInteger(count) || count < 0) throw invalidArgument(`count must be a non-negative integer, got ${count}`);
  const t = isqrt(s2.num / s2.den) + 1n;
  const out: bigint[] = [];
  while (out.length < count) {
    const y = discreteLaplaceExact(t);
    const ay = y < 0n ? -y : y;
    // gamma = (|y| - s2/t)^2 / (2 s2) = (|y| t den - num)^2 / (2 num den t^2).
    const diff = ay * t * s2.den - s2.num;
    if (bernoulliExpNeg(diff * diff, 2n * s2.num * s2.den * t * t)) out.push(y);
  }
  return out;
}

const POOL_WORDS = 1 << 16;
const EXP_M1 = Math.exp(-1);

/** Bulk cryptographic randomness, drawn from node:crypto 256 KiB at a time. */
class RandomPool {
  private readonly words = new Uint32Array(POOL_WORDS);
  private pos = POOL_WORDS;
  private bits = 0;
  private bitCount = 0;

  word(): number {
    if (this.pos === POOL_WORDS) {
      randomFillSync(this.words);
      this.pos = 0;
    }
    return this.words[this.pos++] as number;
  }

  bit(): number {
    if (this.bitCount === 0) {
      this.bits = this.word();
      this.bitCount = 32;
    }
    const b = this.bits & 1;
    this.bits >>>= 1;
    this.bitCount -= 1;
    return b;
  }

  /**
   * Bernoulli(p) for p in [0, 1] as U < p with U uniform on the 2^-64 grid, drawing the second word
   * only when the first 32 bits tie (probability 2^-32). Scaling by 2^32 is exact in float64.
   */
  bernoulli(p: number): boolean {
    const scaled = p * 4294967296;
    const hi = Math.floor(scaled);
    const w = this.word();
    if (w !== hi) return w < hi;
    return this.word() < (scaled - hi) * 4294967296;
  }

  /** Exactly uniform integer in [0, n) for 1 <= n <= 2^32, by rejection. */
  below(n: number): number {
    const limit = Math.floor(4294967296 / n) * n;
    for (;;) {
      const w = this.word();
      if (w < limit) return w % n;
    }
  }
}

/** Largest sigma (in grid units) the fast sampler accepts; keeps uniforms within one 32-bit word. */
export const FAST_SAMPLER_MAX_SIGMA = 2 ** 31;

/**
 * `count` samples of N_Z(0, sigma^2) by the CKS rejection sampler with integer proposals and
 * float64 acceptance probabilities compared against 64-bit uniforms from bulk node:crypto bytes.
 * Outputs are integers; each Bernoulli differs from the exact one by at most 2^-52 (one rounding of
 * exp) + 2^-64, so the output law is within total variation (expected Bernoulli trials) * 2^-51 of
 * the exact discrete Gaussian.
 */
export function sampleDiscreteGaussianFast(sigma: number, count: number): Float64Array {
  if (!(sigma > 0) || sigma > FAST_SAMPLER_MAX_SIGMA) {
    throw invalidArgument(`fast discrete Gaussian needs 0 < sigma <= 2^31 grid units, got ${String(sigma)}; use a coarser grid`);
  }
  const pool = new RandomPool();
  const out = new Float64Array(count);
  const s2 = sigma * sigma;
  const t = Math.floor(sigma) + 1;
  const center = s2 / t;
  const twoS2 = 2 * s2;
  for (let k = 0; k < count; ) {
    // Discrete Laplace(t) proposal.
    const u = pool.below(t);
    if (!pool.bernoulli(Math.exp(-u / t))) continue;
    let v = 0;
    while (pool.bernoulli(EXP_M1)) v += 1;
    const x = u + t * v;
    const negative = pool.bit() === 1;
    if (negative && x === 0) continue;
    const d = x - center;
    if (pool.bernoulli(Math.exp(-(d * d) / twoS2))) out[k++] = negative ? -x : x;
  }
  return out;
}

export interface GaussianNoiseOptions {
  /**
   * Fixed-point step; values are released as integer multiples of it. Default: the power of two
   * with sigma / gridStep in (2^19, 2^20], fine enough that the grid is invisible next to the noise.
   */
  readonly gridStep?: number;
  /** Use the exact BigInt sampler (slow; for small vectors and audits) instead of the fast path. */
  readonly exact?: boolean;
}

/** The default fixed-point step for noise of standard deviation sigma. */
export function defaultNoiseGridStep(sigma: number): number {
  return 2 ** (Math.ceil(Math.log2(sigma)) - 20);
}

/**
 * Extra L2 sensitivity from rounding a d-dimensional input to the grid: per-coordinate rounding moves
 * each coordinate by at most gridStep / 2, so two neighbours' rounded inputs differ by at most
 * their original distance plus gridStep * sqrt(d). Account with clipNorm + this.
 */
export function gridRoundingSensitivity(dimension: number, gridStep: number): number {
  return gridStep * Math.sqrt(dimension);
}

/**
 * Adds discrete Gaussian noise of standard deviation ~sigma on a fixed-point grid: x -> (round(x/g) + Z) g
 * with Z ~ N_Z(0, (sigma/g)^2). The output is always an exact grid point, so the low-order bits of a
 * released value carry no information about the input (Mironov 2012). Returns a new array of the same type.
 */
export function addGaussianNoise<T extends Float32Array | Float64Array>(
  vector: T,
  sigma: number,
  options: GaussianNoiseOptions = {},
): T {
  if (!(sigma > 0) || !Number.isFinite(sigma)) {
    throw invalidArgument(`sigma must be a positive finite number, got ${String(sigma)}; it is noiseMultiplier * clipNorm`);
  }
  const g = options.gridStep ?? defaultNoiseGridStep(sigma);
  if (!(g > 0) || !Number.isFinite(g) || Math.log2(g) !== Math.round(Math.log2(g))) {
    throw invalidArgument(`gridStep must be a positive power of two, got ${String(g)}`);
  }
  const sigmaGrid = sigma / g;
  const n = vector.length;
  const noise = options.exact === true
    ? Float64Array.from(sampleDiscreteGaussianExact(sigmaGrid * sigmaGrid, n), (b) => Number(b))
    : sampleDiscreteGaussianFast(sigmaGrid, n);
  const out = (vector instanceof Float32Array ? new Float32Array(n) : new Float64Array(n)) as T;
  for (let i = 0; i < n; i += 1) {
    const v = vector[i] as number;
    if (!Number.isFinite(v)) throw invalidArgument(`vector[${i}] is ${v}; clip or sanitize inputs before noising`);
    const onGrid = Math.round(v / g) + (noise[i] as number);
    if (!Number.isSafeInteger(onGrid)) throw invalidArgument(`vector[${i}] = ${v} is too large for grid step ${g}`);
    // g is a power of two and onGrid a safe integer, so the product is exact in float64.
    out[i] = onGrid * g;
  }
  return out;
}
