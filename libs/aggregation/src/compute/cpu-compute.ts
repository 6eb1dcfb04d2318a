import { invalidArgument } from '@fedmm/core';
import type { Compute } from './compute.js';
import { createWasmKernels } from './wasm-kernels.js';

// The scalar loops: the fallback where WebAssembly SIMD is missing, and the reference the SIMD
// kernels match bit for bit (same operations, same order, rows grouped 8, 4, 2, 1). Fused loops
// read the float64 accumulator once per up to 8 client rows, its dominant memory traffic.
function fused1(acc: Float64Array, o: number, x0: Float32Array, a0: number): void {
  const n = x0.length;
  for (let i = 0; i < n; i++) acc[o + i]! += a0 * x0[i]!;
}
function fused2(acc: Float64Array, o: number, x0: Float32Array, x1: Float32Array, a0: number, a1: number): void {
  const n = x0.length;
  for (let i = 0; i < n; i++) acc[o + i]! += a0 * x0[i]! + a1 * x1[i]!;
}
function fused4(
  acc: Float64Array, o: number,
  x0: Float32Array, x1: Float32Array, x2: Float32Array, x3: Float32Array,
  a0: number, a1: number, a2: number, a3: number,
): void {
  const n = x0.length;
  for (let i = 0; i < n; i++) acc[o + i]! += a0 * x0[i]! + a1 * x1[i]! + a2 * x2[i]! + a3 * x3[i]!;
}
function fused8(acc: Float64Array, o: number, x: readonly Float32Array[], a: ArrayLike<number>, j: number): void {
  const x0 = x[j]!, x1 = x[j + 1]!, x2 = x[j + 2]!, x3 = x[j + 3]!, x4 = x[j + 4]!, x5 = x[j + 5]!, x6 = x[j + 6]!, x7 = x[j + 7]!;
  const a0 = a[j]!, a1 = a[j + 1]!, a2 = a[j + 2]!, a3 = a[j + 3]!, a4 = a[j + 4]!, a5 = a[j + 5]!, a6 = a[j + 6]!, a7 = a[j + 7]!;
  const n = x0.length;
  for (let i = 0; i < n; i++) {
    acc[o + i]! +=
      a0 * x0[i]! + a1 * x1[i]! + a2 * x2[i]! + a3 * x3[i]! + a4 * x4[i]! + a5 * x5[i]! + a6 * x6[i]! + a7 * x7[i]!;
  }
}

/** Places the k-th smallest of v[lo..hi] at index k, smaller ones before it, larger after (Hoare quickselect). */
function select(v: Float64Array, lo: number, hi: number, k: number): void {
  while (hi > lo) {
    const pivot = v[(lo + hi) >>> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (v[i]! < pivot) i++;
      while (v[j]! > pivot) j--;
      if (i <= j) {
        const t = v[i]!;
        v[i] = v[j]!;
        v[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}

/** Smallest of v[lo..hi]. */
function minOf(v: Float64Array, lo: number, hi: number): number {
  let m = v[lo]!;
  for (let i = lo + 1; i <= hi; i++) if (v[i]! < m) m = v[i]!;
  return m;
}

function gather(rows: readonly Float32Array[], i: number, scratch: Float64Array): void {
  for (let k = 0; k < rows.length; k++) scratch[k] = rows[k]![i]!;
}

function checkRows(rows: readonly Float32Array[], start: number, length: number): void {
  for (const r of rows) {
    if (r.length < start + length) {
      throw invalidArgument(`a row of ${r.length} elements is shorter than the range [${start}, ${start + length}) it is asked to cover`);
    }
  }
}

/** The scalar loop of weightedSumInto: fused passes of up to 8 rows over the accumulator. */
function scalarWeightedSumInto(acc: Float64Array, offset: number, rows: readonly Float32Array[], weights: ArrayLike<number>, assign: boolean): void {
  if (assign) acc.fill(0, offset, offset + (rows[0]?.length ?? 0));
  let j = 0;
  const k = rows.length;
  for (; j + 8 <= k; j += 8) fused8(acc, offset, rows, weights, j);
  if (j + 4 <= k) {
    fused4(acc, offset, rows[j]!, rows[j + 1]!, rows[j + 2]!, rows[j + 3]!, weights[j]!, weights[j + 1]!, weights[j + 2]!, weights[j + 3]!);
    j += 4;
  }
  if (j + 2 <= k) {
    fused2(acc, offset, rows[j]!, rows[j + 1]!, weights[j]!, weights[j + 1]!);
    j += 2;
  }
  if (j < k) fused1(acc, offset, rows[j]!, weights[j]!);
}

function scalarScaleInto(out: Float32Array, src: Float64Array, start: number, length: number, factor: number): void {
  const end = start + length;
  for (let i = start; i < end; i++) out[i] = src[i]! * factor;
}

/** Sum of squares of x, in float64 (two partial sums). */
function squaredNorm(x: Float32Array): number {
  let s0 = 0;
  let s1 = 0;
  const n = x.length;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const a = x[i]!;
    const b = x[i + 1]!;
    s0 += a * a;
    s1 += b * b;
  }
  if (i < n) s0 += x[i]! * x[i]!;
  return s0 + s1;
}

/** Squared distances between all pairs of rows over [start, start + length), added into out. */
function pairwiseSquaredDistances(rows: readonly Float32Array[], start: number, length: number, out: Float64Array): void {
  const k = rows.length;
  checkRows(rows, start, length);
  const end = start + length;
  for (let a = 0; a < k; a++) {
    const ra = rows[a]!;
    for (let b = a + 1; b < k; b++) {
      const rb = rows[b]!;
      let s = 0;
      for (let i = start; i < end; i++) {
        const d = ra[i]! - rb[i]!;
        s += d * d;
      }
      out[a * k + b]! += s;
      out[b * k + a]! += s;
    }
  }
}

/** Coordinate-wise median by quickselect, O(K) per coordinate. */
function coordinateMedian(rows: readonly Float32Array[], start: number, length: number, out: Float32Array): void {
  const k = rows.length;
  checkRows(rows, start, length);
  if (k === 0) throw invalidArgument('coordinateMedian needs at least one row');
  const v = new Float64Array(k);
  const mid = (k - 1) >>> 1;
  const end = start + length;
  for (let i = start; i < end; i++) {
    gather(rows, i, v);
    select(v, 0, k - 1, mid);
    out[i] = k % 2 === 1 ? v[mid]! : (v[mid]! + minOf(v, mid + 1, k - 1)) / 2;
  }
}

/** Coordinate-wise mean without the `trim` smallest and largest values, by two quickselects. */
function coordinateTrimmedMean(rows: readonly Float32Array[], trim: number, start: number, length: number, out: Float32Array): void {
  const k = rows.length;
  checkRows(rows, start, length);
  if (!Number.isInteger(trim) || trim < 0 || 2 * trim >= k) {
    throw invalidArgument(`cannot drop ${trim} values from each end of ${k}; at least one value must remain`);
  }
  const v = new Float64Array(k);
  const kept = k - 2 * trim;
  const end = start + length;
  for (let i = start; i < end; i++) {
    gather(rows, i, v);
    if (trim > 0) {
      select(v, 0, k - 1, trim);
      select(v, trim, k - 1, k - trim - 1);
    }
    let s = 0;
    for (let j = trim; j < k - trim; j++) s += v[j]!;
    out[i] = s / kept;
  }
}

/** Options of createCpuCompute. */
export interface CpuComputeOptions {
  /**
   * Run the linear kernels (weightedSumInto, scaleInto) in WebAssembly SIMD (default true; falls
   * back to the scalar loops where WebAssembly SIMD is unavailable). Results are bit-identical.
   */
  readonly simd?: boolean;
}

/** The CPU kernels: every Compute member, allocateSum included. */
export interface CpuCompute extends Compute {
  allocateSum(length: number): Float64Array;
}

/**
 * Typed-array kernels, zero-copy over the received buffers; the linear ones in WebAssembly SIMD
 * unless `simd: false`. The name tells which: 'cpu' (SIMD) or 'cpu-scalar'.
 */
export function createCpuCompute(options: CpuComputeOptions = {}): CpuCompute {
  const wasm = options.simd === false ? undefined : createWasmKernels();
  const sumInto = wasm?.weightedSumInto ?? scalarWeightedSumInto;
  const scale = wasm?.scaleInto ?? scalarScaleInto;
  return Object.freeze({
    name: wasm === undefined ? 'cpu-scalar' : 'cpu',

    allocateSum(length: number): Float64Array {
      return wasm === undefined ? new Float64Array(length) : wasm.allocateSum(length);
    },

    weightedSumInto(acc: Float64Array, offset: number, rows: readonly Float32Array[], weights: ArrayLike<number>, assign = false): void {
      const n = rows[0]?.length ?? 0;
      if (!Number.isInteger(offset) || offset < 0 || offset + n > acc.length) {
        throw invalidArgument(`rows of ${n} elements at offset ${offset} do not fit an accumulator of ${acc.length}`);
      }
      for (const r of rows) {
        if (r.length !== n) throw invalidArgument(`weightedSumInto needs rows of one length; got ${r.length} and ${n}`);
      }
      if (weights.length < rows.length) {
        throw invalidArgument(`weightedSumInto got ${rows.length} rows but ${weights.length} weights; pass one weight per row`);
      }
      sumInto(acc, offset, rows, weights, assign);
    },

    scaleInto(out: Float32Array, src: Float64Array, start: number, length: number, factor: number): void {
      if (!Number.isInteger(start) || start < 0 || length < 0 || start + length > src.length || start + length > out.length) {
        throw invalidArgument(`range [${start}, ${start + length}) does not fit a source of ${src.length} and an output of ${out.length}`);
      }
      scale(out, src, start, length, factor);
    },

    squaredNorm,
    pairwiseSquaredDistances,
    coordinateMedian,
    coordinateTrimmedMean,
  });
}

/** The default kernels (SIMD where available). */
export const cpuCompute: CpuCompute = createCpuCompute();
