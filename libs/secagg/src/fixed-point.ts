import { invalidArgument } from '@fedmm/core';
import { systemRandom, type RandomSource } from './random.js';
import { BLOCK_WORDS, ringKernels } from './ring-kernels.js';

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

/** The constants of one encoding, computed once: clip range, scale, shift and top level. */
export interface EncodingConstants {
  readonly clipRange: number;
  readonly scale: number;
  readonly shift: number;
  readonly levels: number;
}

/** The constants of `params` (checked). */
export function encodingConstants(params: FixedPointParams): EncodingConstants {
  const levels = fixedPointLevels(params);
  const scale = levels / (2 * params.clipRange);
  return { clipRange: params.clipRange, scale, shift: params.clipRange * scale, levels };
}

/**
 * The scalar encoding, the reference for the SIMD kernel: out[outAt + i] = the encoding of
 * values[from + i] with rounding coin coins[coinAt + i], for i < count.
 */
export function encodeScalar(
  values: Float32Array,
  from: number,
  count: number,
  coins: Uint32Array,
  coinAt: number,
  out: Uint32Array,
  outAt: number,
  k: EncodingConstants,
): void {
  const { clipRange: c, scale, shift, levels } = k;
  for (let i = 0; i < count; i++) {
    const x = values[from + i]!;
    // x - x is NaN exactly for NaN and the infinities.
    if (x - x !== 0) throw nonFinite(from + i, x);
    const q = (x < -c ? -c : x > c ? c : x) * scale + shift;
    // q is in [0, levels], so truncation is the floor.
    const floor = q >>> 0;
    // Round up with probability equal to the fractional part.
    const v = coins[coinAt + i]! < (q - floor) * RING ? floor + 1 : floor;
    out[outAt + i] = v > levels ? levels : v;
  }
}

function nonFinite(index: number, x: number): Error {
  return invalidArgument(`update coordinate ${index} is ${x}; only finite values can be encoded`);
}

/** Throws for the first non-finite value of values[from, from + count). */
export function refuseNonFinite(values: Float32Array, from: number, count: number): void {
  for (let i = from; i < from + count; i++) {
    const x = values[i]!;
    if (x - x !== 0) throw nonFinite(i, x);
  }
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
  const out = new Uint32Array(values.length);
  encodeBlocks(values, encodingConstants(params), random, (block, at) => out.set(block, at));
  return out;
}

/**
 * Encodes `values` in blocks of BLOCK_WORDS coordinates (one rounding coin per coordinate, drawn
 * in order) and hands each encoded block to `visit`; the block is reused after `visit` returns.
 * With the SIMD kernels the block is their staging target, so `visit` may stage nothing else.
 */
export function encodeBlocks(
  values: Float32Array,
  k: EncodingConstants,
  random: RandomSource,
  visit: (block: Uint32Array, at: number) => void,
): void {
  const kernels = ringKernels();
  if (kernels === undefined) {
    const coins = new Uint32Array(Math.min(BLOCK_WORDS, values.length));
    const coinBytes = new Uint8Array(coins.buffer);
    const block = new Uint32Array(coins.length);
    for (let start = 0; start < values.length; start += coins.length) {
      const n = Math.min(coins.length, values.length - start);
      random.fill(coinBytes.subarray(0, 4 * n));
      encodeScalar(values, start, n, coins, 0, block, 0, k);
      visit(block.subarray(0, n), start);
    }
    return;
  }
  for (let start = 0; start < values.length; start += BLOCK_WORDS) {
    const n = Math.min(BLOCK_WORDS, values.length - start);
    const whole = n & ~3;
    kernels.values.set(values.subarray(start, start + whole));
    random.fill(kernels.coins.subarray(0, 4 * n));
    if (!kernels.encode(whole, k.clipRange, k.scale, k.shift, k.levels)) refuseNonFinite(values, start, whole);
    encodeScalar(values, start + whole, n - whole, kernels.coinWords, whole, kernels.target, whole, k);
    visit(kernels.target.subarray(0, n), start);
  }
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
