import { invalidArgument } from '@fedmm/core';
import { addGaussianNoise, type GaussianNoiseOptions } from './noise.js';

function l2Norm(v: Float32Array | Float64Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i += 1) {
    const x = v[i] as number;
    s += x * x;
  }
  return Math.sqrt(s);
}

function requireClip(name: string, bound: number): void {
  if (!(bound > 0) || !Number.isFinite(bound)) {
    throw invalidArgument(`${name} must be a positive finite number, got ${String(bound)}`);
  }
}

/** Scales v in place by factor and guarantees ||v|| <= bound despite float32 rounding. */
function scaleWithin(v: Float32Array, factor: number, bound: number): number {
  let f = factor;
  for (let attempt = 0; ; attempt += 1) {
    for (let i = 0; i < v.length; i += 1) v[i] = (v[i] as number) * f;
    const n = l2Norm(v);
    if (n <= bound || attempt > 8) return n;
    // Rounding pushed the norm a hair over the bound; shrink by the excess and re-check.
    f = (bound / n) * (1 - 2 ** -20);
  }
}

export interface ClippedGradients {
  readonly clipped: Float32Array[];
  /** min(1, clipNorm / ||g||) per example, as applied. */
  readonly factors: Float64Array;
  /** Pre-clipping L2 norms. */
  readonly norms: Float64Array;
}

/** Clips each per-example gradient to L2 norm <= clipNorm (new arrays; inputs untouched). */
export function clipPerExample(grads: readonly Float32Array[], clipNorm: number): ClippedGradients {
  requireClip('clipNorm', clipNorm);
  const clipped: Float32Array[] = [];
  const factors = new Float64Array(grads.length);
  const norms = new Float64Array(grads.length);
  const dim = grads[0]?.length ?? 0;
  grads.forEach((g, k) => {
    if (g.length !== dim) throw invalidArgument(`gradient ${k} has ${g.length} values, expected ${dim}; all examples must share a shape`);
    const norm = l2Norm(g);
    if (!Number.isFinite(norm)) throw invalidArgument(`gradient ${k} has a non-finite norm; drop or sanitize the example`);
    norms[k] = norm;
    const c = Float32Array.from(g);
    const factor = norm > clipNorm ? clipNorm / norm : 1;
    if (factor < 1) scaleWithin(c, factor, clipNorm);
    factors[k] = factor;
    clipped.push(c);
  });
  return { clipped, factors, norms };
}

export interface PrivatizeOptions extends GaussianNoiseOptions {
  /** Divisor of the noisy sum; with Poisson sampling use the expected batch size q * N. Default: batch length. */
  readonly normalizer?: number;
  /** Gradient length, required when the sampled batch is empty (valid under Poisson sampling). */
  readonly dimension?: number;
}

/** DP-SGD step: (sum of clipped per-example gradients + N_Z-on-grid(0, (sigma C)^2)) / normalizer. */
export function privatizeBatchGradient(
  perExampleGrads: readonly Float32Array[],
  clipNorm: number,
  noiseMultiplier: number,
  options: PrivatizeOptions = {},
): Float32Array {
  requireClip('clipNorm', clipNorm);
  if (!(noiseMultiplier > 0) || !Number.isFinite(noiseMultiplier)) {
    throw invalidArgument(`noiseMultiplier must be positive and finite, got ${String(noiseMultiplier)}; calibrate it with planNoise`);
  }
  const dim = perExampleGrads[0]?.length ?? options.dimension;
  if (dim === undefined) throw invalidArgument('empty batch: pass options.dimension so noise can still be added');
  const normalizer = options.normalizer ?? perExampleGrads.length;
  if (!(normalizer > 0)) throw invalidArgument(`normalizer must be positive, got ${normalizer}; pass the expected batch size`);
  const { clipped } = clipPerExample(perExampleGrads, clipNorm);
  const sum = new Float64Array(dim);
  for (const g of clipped) for (let i = 0; i < dim; i += 1) sum[i] = (sum[i] as number) + (g[i] as number);
  const noiseOptions: GaussianNoiseOptions = {
    ...(options.gridStep !== undefined ? { gridStep: options.gridStep } : {}),
    ...(options.exact !== undefined ? { exact: options.exact } : {}),
  };
  const noisy = addGaussianNoise(sum, noiseMultiplier * clipNorm, noiseOptions);
  const out = new Float32Array(dim);
  for (let i = 0; i < dim; i += 1) out[i] = (noisy[i] as number) / normalizer;
  return out;
}

/** Client-level DP: scales a model update to L2 norm <= bound (new array), reporting the factor applied. */
export function clipUpdate(update: Float32Array, bound: number): { clipped: Float32Array; factor: number; norm: number } {
  requireClip('bound', bound);
  const norm = l2Norm(update);
  if (!Number.isFinite(norm)) throw invalidArgument('update has a non-finite norm; reject it before aggregation');
  const clipped = Float32Array.from(update);
  const factor = norm > bound ? bound / norm : 1;
  if (factor < 1) scaleWithin(clipped, factor, bound);
  return { clipped, factor, norm };
}
