/**
 * The kernels aggregation runs on. Rows are float32 client values (zero-copy views of received
 * chunks); sums accumulate in float64 (see docs/AGGREGATION.md for the measured error).
 */
export interface Compute {
  readonly name: string;
  /**
   * A zeroed float64 accumulator of `length` on which weightedSumInto and scaleInto run fastest
   * (the SIMD kernels update one in WebAssembly memory in place). Optional: plain arrays work too.
   */
  allocateSum?(length: number): Float64Array;
  /**
   * acc[offset + i] += sum_j weights[j] * rows[j][i] for i < rows[0].length; all rows have one
   * length. With `assign`, the range's old values are ignored (as if zero): a first pass over
   * memory that need not be cleared, and need not be read.
   */
  weightedSumInto(acc: Float64Array, offset: number, rows: readonly Float32Array[], weights: ArrayLike<number>, assign?: boolean): void;
  /** out[i] = src[start + i] * factor for i < length, written at out[start + i]. */
  scaleInto(out: Float32Array, src: Float64Array, start: number, length: number, factor: number): void;
  /** Sum of squares of x, in float64. */
  squaredNorm(x: Float32Array): number;
  /** out[a * K + b] += ||rows[a][start..start+length) - rows[b][..]||^2 for all pairs (K = rows.length). */
  pairwiseSquaredDistances(rows: readonly Float32Array[], start: number, length: number, out: Float64Array): void;
  /** Coordinate-wise median of rows over [start, start + length), written at out[start + i]. */
  coordinateMedian(rows: readonly Float32Array[], start: number, length: number, out: Float32Array): void;
  /** Coordinate-wise mean after dropping the `trim` smallest and `trim` largest values. */
  coordinateTrimmedMean(rows: readonly Float32Array[], trim: number, start: number, length: number, out: Float32Array): void;
}
