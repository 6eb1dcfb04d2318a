import { invalidArgument } from '@fedmm/core';

/** Throws INVALID_ARGUMENT unless value is a finite number within [min, max]. */
export function requireInRange(name: string, value: number, min: number, max: number, hint: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalidArgument(`${name} must be a finite number in [${min}, ${max}], got ${String(value)}; ${hint}`, {
      [name]: value,
    });
  }
}

/** Throws INVALID_ARGUMENT unless value is a non-negative safe integer. */
export function requireCount(name: string, value: number, hint: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw invalidArgument(`${name} must be a non-negative integer, got ${String(value)}; ${hint}`, { [name]: value });
  }
}

/** Throws INVALID_ARGUMENT unless delta is in (0, 1). */
export function requireDelta(delta: number): void {
  if (typeof delta !== 'number' || !(delta > 0 && delta < 1)) {
    throw invalidArgument(`delta must be in (0, 1), got ${String(delta)}; pass e.g. 1e-5 or 1/(dataset size)`, { delta });
  }
}

/** Structural shape of a subsampled-Gaussian event, declared here to keep modules acyclic. */
export interface SubsampledGaussianEventLike {
  readonly samplingRate: number;
  readonly noiseMultiplier: number;
  readonly steps: number;
}
