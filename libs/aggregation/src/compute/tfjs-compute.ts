import { invalidArgument } from '@fedmm/core';
import type { Compute } from './compute.js';
import { cpuCompute } from './cpu-compute.js';

/** The part of a tensor the kernels use. */
export interface TfTensor {
  dataSync(): ArrayLike<number>;
}

/** The part of the TensorFlow.js API the kernels use (tfjs, tfjs-node and tfjs-node-gpu all provide it). */
export interface TfModule {
  tidy<T extends TfTensor>(fn: () => T): T;
  tensor2d(values: Float32Array, shape: [number, number], dtype: 'float32'): TfTensor;
  transpose(x: TfTensor): TfTensor;
  topk(x: TfTensor, k: number, sorted: boolean): { values: TfTensor };
  slice(x: TfTensor, begin: number[], size: number[]): TfTensor;
  mean(x: TfTensor, axis: number): TfTensor;
  sum(x: TfTensor, axis: number): TfTensor;
  squaredDifference(a: TfTensor, b: TfTensor): TfTensor;
  dispose(x: TfTensor): void;
}

/** Elements per packed K x L block sent to the device, to bound device memory. */
const BLOCK_ELEMENTS = 1 << 22;

function pack(rows: readonly Float32Array[], start: number, length: number): Float32Array {
  const packed = new Float32Array(rows.length * length);
  rows.forEach((r, k) => {
    if (r.length < start + length) throw invalidArgument(`a row of ${r.length} elements is shorter than the range [${start}, ${start + length})`);
    packed.set(r.subarray(start, start + length), k * length);
  });
  return packed;
}

function blocks(k: number, start: number, length: number, fn: (s: number, l: number) => void): void {
  const step = Math.max(1, Math.floor(BLOCK_ELEMENTS / Math.max(1, k)));
  for (let s = start; s < start + length; s += step) fn(s, Math.min(step, start + length - s));
}

/**
 * Kernels on TensorFlow.js for the robust rules, whose sort- and distance-heavy work suits a GPU.
 * The linear kernels stay on typed arrays: they are memory-bound, and a round trip to the device
 * would cost more than the arithmetic; the float64 accumulator also has no GPU dtype in tfjs.
 * Sorting and distances run in float32 on the device.
 */
export function createTfjsCompute(tf: TfModule, name = 'tfjs'): Compute {
  const columnMean = (rows: readonly Float32Array[], firstSorted: number, count: number, start: number, length: number, out: Float32Array): void => {
    const k = rows.length;
    blocks(k, start, length, (s, l) => {
      const x = tf.tidy(() => {
        const t = tf.transpose(tf.tensor2d(pack(rows, s, l), [k, l], 'float32'));
        const sorted = tf.topk(t, k, true).values;
        return tf.mean(tf.slice(sorted, [0, firstSorted], [l, count]), 1);
      });
      out.set(x.dataSync(), s);
      tf.dispose(x);
    });
  };
  return Object.freeze({
    name,
    allocateSum: cpuCompute.allocateSum,
    weightedSumInto: cpuCompute.weightedSumInto,
    scaleInto: cpuCompute.scaleInto,
    squaredNorm: cpuCompute.squaredNorm,

    pairwiseSquaredDistances(rows: readonly Float32Array[], start: number, length: number, out: Float64Array): void {
      const k = rows.length;
      blocks(k, start, length, (s, l) => {
        const x = tf.tensor2d(pack(rows, s, l), [k, l], 'float32');
        for (let a = 0; a < k; a++) {
          const d = tf.tidy(() => tf.sum(tf.squaredDifference(x, tf.slice(x, [a, 0], [1, l])), 1));
          const row = d.dataSync();
          for (let b = 0; b < k; b++) if (b !== a) out[a * k + b]! += row[b]!;
          tf.dispose(d);
        }
        tf.dispose(x);
      });
    },

    coordinateMedian(rows: readonly Float32Array[], start: number, length: number, out: Float32Array): void {
      const k = rows.length;
      if (k === 0) throw invalidArgument('coordinateMedian needs at least one row');
      // topk sorts descending; the median is the middle one (odd K) or the mean of the middle two.
      if (k % 2 === 1) columnMean(rows, (k - 1) / 2, 1, start, length, out);
      else columnMean(rows, k / 2 - 1, 2, start, length, out);
    },

    coordinateTrimmedMean(rows: readonly Float32Array[], trim: number, start: number, length: number, out: Float32Array): void {
      const k = rows.length;
      if (!Number.isInteger(trim) || trim < 0 || 2 * trim >= k) {
        throw invalidArgument(`cannot drop ${trim} values from each end of ${k}; at least one value must remain`);
      }
      columnMean(rows, trim, k - 2 * trim, start, length, out);
    },
  });
}
