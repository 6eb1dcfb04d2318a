import { invalidArgument } from '@fedmm/core';
import { systemRandom, type RandomSource } from './random.js';

/**
 * How clipped float updates map into the integers mod 2^32. Each client's coordinate x is
 * clipped to [-clipRange, clipRange] and mapped to an integer in [0, levels] with
 * levels = floor((2^32 - 1) / maxSummands), so a sum of up to maxSummands encoded vectors never
 * wraps: n * levels <= 2^32 - 1 is the overflow bound.
 */
export interface FixedPointParams {
  readonly clipRange: number;
  readonly maxSummands: number;
}

const RING = 2 ** 32;
const ROUNDING_WORDS = 1 << 16;

function checkParams(p: FixedPointParams): void {
  if (!(Number.isFinite(p.clipRange) && p.clipRange > 0)) {
    throw invalidArgument(`clipRange must be a finite number > 0, got ${p.clipRange}`);
  }
  if (!Number.isInteger(p.maxSummands) || p.maxSummands < 1 || p.maxSummands > 1 << 16) {
    throw invalidArgument(`maxSummands must be an integer in [1, 65536], got ${p.maxSummands}`);
  }
}

/** Integer levels one client's coordinate may take: floor((2^32 - 1) / maxSummands). */
export function fixedPointLevels(p: FixedPointParams): number {
  checkParams(p);
  return Math.floor((RING - 1) / p.maxSummands);
}

/** Integer steps per unit of the float value: levels / (2 * clipRange). */
export function fixedPointScale(p: FixedPointParams): number {
  return fixedPointLevels(p) / (2 * p.clipRange);
}

/**
 * Largest absolute error of a decoded sum of `count` vectors, per coordinate, against the sum of
 * the clipped inputs: stochastic rounding moves each summand by less than one step.
 */
export function quantizationErrorBound(p: FixedPointParams, count: number): number {
  return count / fixedPointScale(p);
}

/**
 * Clips `values` to [-clipRange, clipRange] and encodes them with stochastic rounding (unbiased:
 * the expected encoding is the exact scaled value), drawing rounding bits from `random`.
 */
export function encode(
  values: Float32Array,
  params: FixedPointParams,
  random: RandomSource = systemRandom,
): Uint32Array {
  const levels = fixedPointLevels(params);
  const c = params.clipRange;
  const scale = levels / (2 * c);
  const shift = c * scale;
  const out = new Uint32Array(values.length);
  const coins = new Uint32Array(Math.min(ROUNDING_WORDS, values.length));
  const coinBytes = new Uint8Array(coins.buffer);
  for (let start = 0; start < values.length; start += coins.length) {
    random.fill(coinBytes);
    const end = Math.min(values.length, start + coins.length);
    for (let i = start; i < end; i++) {
      const x = values[i]!;
      // x - x is NaN exactly for NaN and the infinities.
      if (x - x !== 0) {
        throw invalidArgument(`update coordinate ${i} is ${x}; only finite values can be encoded`);
      }
      const q = (x < -c ? -c : x > c ? c : x) * scale + shift;
      // q is in [0, levels], so truncation is the floor.
      const floor = q >>> 0;
      // Round up with probability equal to the fractional part.
      const v = coins[i - start]! < (q - floor) * RING ? floor + 1 : floor;
      out[i] = v > levels ? levels : v;
    }
  }
  return out;
}

/** Decodes the sum of `count` encoded vectors back to the float sum of their clipped inputs. */
export function decodeSum(sum: Uint32Array, count: number, params: FixedPointParams): Float32Array {
  const scale = fixedPointScale(params);
  if (!Number.isInteger(count) || count < 1 || count > params.maxSummands) {
    throw invalidArgument(
      `a sum of ${count} vectors cannot be decoded: the encoding allows 1 to ${params.maxSummands} summands`,
    );
  }
  const offset = count * params.clipRange;
  const out = new Float32Array(sum.length);
  for (let i = 0; i < sum.length; i++) out[i] = sum[i]! / scale - offset;
  return out;
}
