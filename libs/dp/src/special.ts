import erfc from '@stdlib/math-base-special-erfc';
import erfcx from '@stdlib/math-base-special-erfcx';
import gammaln from '@stdlib/math-base-special-gammaln';

const LN2 = Math.LN2;
const SQRT1_2 = Math.SQRT1_2;

/** log(erfc(x)), accurate in both tails: erfcx keeps the right tail from underflowing. */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x === Number.POSITIVE_INFINITY) return Number.NEGATIVE_INFINITY;
  // Below 1, erfc(x) lies in (0.157, 2] and the stdlib value has full relative accuracy.
  if (x < 1) return Math.log(erfc(x));
  // erfc(x) = erfcx(x) * exp(-x^2); x*x may overflow to Infinity, which is the correct limit.
  return Math.log(erfcx(x)) - x * x;
}

/** log(Phi(x)) for the standard normal CDF Phi, stable for very negative x. */
export function logNdtr(x: number): number {
  return logErfc(-x * SQRT1_2) - LN2;
}

/** Standard normal CDF Phi(x). */
export function ndtr(x: number): number {
  return 0.5 * erfc(-x * SQRT1_2);
}

/** log(exp(a) + exp(b)) without overflow. */
export function logAdd(a: number, b: number): number {
  const hi = Math.max(a, b);
  const lo = Math.min(a, b);
  if (lo === Number.NEGATIVE_INFINITY) return hi;
  return hi + Math.log1p(Math.exp(lo - hi));
}

/** log(exp(a) - exp(b)) for a >= b; -Infinity when equal, NaN when a < b. */
export function logSub(a: number, b: number): number {
  if (a < b) return Number.NaN;
  if (b === Number.NEGATIVE_INFINITY) return a;
  if (a === b) return Number.NEGATIVE_INFINITY;
  const d = b - a;
  // log1p(-exp(d)) loses accuracy when exp(d) is near 1; log(-expm1(d)) does not.
  return a + (d > -LN2 ? Math.log(-Math.expm1(d)) : Math.log1p(-Math.exp(d)));
}

/** log|binom(n, k)| for real n >= 0 and integer k >= 0, via log-gamma. */
export function logAbsBinomial(n: number, k: number): number {
  if (Number.isInteger(n) && k > n) return Number.NEGATIVE_INFINITY;
  return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1);
}

/** Sign of binom(alpha, k) for real alpha > 0 and integer k >= 0. */
export function binomialSign(alpha: number, k: number): 1 | -1 {
  // Factors (alpha - j) for j < k are negative once j > alpha.
  const negatives = Math.max(0, k - Math.ceil(alpha));
  return Number.isInteger(alpha) || negatives % 2 === 0 ? 1 : -1;
}

/** Inverse of the standard normal CDF for p in (0, 1), by bisection on the stable log-CDF. */
export function ndtri(p: number): number {
  if (!(p > 0 && p < 1)) {
    if (p === 0) return Number.NEGATIVE_INFINITY;
    if (p === 1) return Number.POSITIVE_INFINITY;
    return Number.NaN;
  }
  if (p > 0.5) return -ndtri(1 - p);
  const target = Math.log(p);
  let lo = -40;
  let hi = 0;
  for (let i = 0; i < 200 && hi - lo > 1e-15 * Math.max(1, Math.abs(lo)); i += 1) {
    const mid = 0.5 * (lo + hi);
    if (logNdtr(mid) < target) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}
