import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  addGaussianNoise,
  defaultNoiseGridStep,
  gridRoundingSensitivity,
  rationalFromNumber,
  sampleDiscreteGaussianExact,
  sampleDiscreteGaussianFast,
} from './index.js';

function moments(xs: ArrayLike<number>): { mean: number; variance: number } {
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < xs.length; i += 1) {
    const x = xs[i] as number;
    s += x;
    s2 += x * x;
  }
  const mean = s / xs.length;
  return { mean, variance: s2 / xs.length - mean * mean };
}

/** Exact variance of N_Z(0, s2) by direct summation (it is slightly below s2 for small s2). */
function discreteGaussianVariance(s2: number): number {
  let z = 0;
  let m2 = 0;
  for (let x = -Math.ceil(40 * Math.sqrt(s2)) - 5; x <= Math.ceil(40 * Math.sqrt(s2)) + 5; x += 1) {
    const w = Math.exp(-(x * x) / (2 * s2));
    z += w;
    m2 += x * x * w;
  }
  return m2 / z;
}

// Variance estimate of n samples has standard error ~ v * sqrt(2 / n); 5 standard errors keeps false alarms ~1e-6.
const withinVariance = (got: number, expected: number, n: number): boolean =>
  Math.abs(got - expected) <= 5 * expected * Math.sqrt(2 / n);

test('exact discrete Gaussian: mean 0, variance of N_Z(0, s2), integer outputs', () => {
  for (const s2 of [0.25, 2.25, 100]) {
    const n = 4000;
    const xs = sampleDiscreteGaussianExact(s2, n).map(Number);
    const { mean, variance } = moments(xs);
    const v = discreteGaussianVariance(s2);
    assert.ok(Math.abs(mean) <= 5 * Math.sqrt(v / n), `s2=${s2} mean ${mean}`);
    assert.ok(withinVariance(variance, v, n), `s2=${s2} variance ${variance} vs ${v}`);
  }
  // For s2 = 0.25, P(0) = 1/Z with Z = sum exp(-2x^2); check the mass at zero too.
  const xs = sampleDiscreteGaussianExact({ num: 1n, den: 4n }, 4000);
  const z = 1 + 2 * (Math.exp(-2) + Math.exp(-8) + Math.exp(-18));
  const p0 = xs.filter((x) => x === 0n).length / xs.length;
  assert.ok(Math.abs(p0 - 1 / z) < 5 * Math.sqrt((1 / z) * (1 - 1 / z) / 4000), `P(0) ${p0}`);
});

test('fast discrete Gaussian: variance and symmetry within statistical tolerance at small and large sigma', () => {
  for (const sigma of [0.7, 3, 1000, 2 ** 20]) {
    const n = 200_000;
    const xs = sampleDiscreteGaussianFast(sigma, n);
    for (let i = 0; i < 100; i += 1) assert.ok(Number.isInteger(xs[i]));
    const { mean, variance } = moments(xs);
    const v = sigma < 10 ? discreteGaussianVariance(sigma * sigma) : sigma * sigma;
    assert.ok(Math.abs(mean) <= 5 * Math.sqrt(v / n), `sigma=${sigma} mean ${mean}`);
    assert.ok(withinVariance(variance, v, n), `sigma=${sigma} variance ${variance} vs ${v}`);
  }
});

test('fast and exact samplers agree on the law (two-sample chi-square on binned values)', () => {
  const s = 1.5;
  const n = 3000;
  const a = sampleDiscreteGaussianExact(s * s, n).map(Number);
  const b = Array.from(sampleDiscreteGaussianFast(s, n));
  const bin = (x: number): number => Math.max(-4, Math.min(4, x)) + 4;
  const ca = new Array<number>(9).fill(0);
  const cb = new Array<number>(9).fill(0);
  a.forEach((x) => (ca[bin(x)] = (ca[bin(x)] as number) + 1));
  b.forEach((x) => (cb[bin(x)] = (cb[bin(x)] as number) + 1));
  let chi = 0;
  for (let i = 0; i < 9; i += 1) {
    const sum = (ca[i] as number) + (cb[i] as number);
    if (sum > 0) chi += ((ca[i] as number) - (cb[i] as number)) ** 2 / sum;
  }
  // 8 degrees of freedom: P(chi2 > 35) < 3e-5.
  assert.ok(chi < 35, `chi-square ${chi}`);
});

test('addGaussianNoise releases exact grid points with the requested spread and keeps the array type', () => {
  const sigma = 0.5;
  const g = defaultNoiseGridStep(sigma);
  assert.equal(g, 2 ** -21);
  const input = new Float32Array(100_000).fill(0.123456789);
  const out = addGaussianNoise(input, sigma);
  assert.ok(out instanceof Float32Array);
  const diffs = new Float64Array(out.length);
  const base = Math.round(0.123456789 / g) * g;
  for (let i = 0; i < out.length; i += 1) diffs[i] = (out[i] as number) - base;
  const { variance } = moments(diffs);
  assert.ok(withinVariance(variance, sigma * sigma, out.length), `variance ${variance}`);
  const f64 = addGaussianNoise(new Float64Array([1, -2, 3.5]), 1, { gridStep: 2 ** -10 });
  assert.ok(f64 instanceof Float64Array);
  for (const v of f64) assert.ok(Number.isInteger(v * 2 ** 10), `${v} is not on the 2^-10 grid`);
  const exact = addGaussianNoise(new Float64Array(200), 1, { gridStep: 2 ** -4, exact: true });
  for (const v of exact) assert.ok(Number.isInteger(v * 16));
  assert.equal(input[0], Math.fround(0.123456789), 'input must not be mutated');
});

test('grid helpers and argument checks', () => {
  assert.deepEqual(rationalFromNumber(0.375), { num: 3n, den: 8n });
  assert.equal(gridRoundingSensitivity(1_000_000, 2 ** -20), 1000 * 2 ** -20);
  assert.throws(() => addGaussianNoise(new Float32Array(2), 0));
  assert.throws(() => addGaussianNoise(new Float32Array(2), 1, { gridStep: 0.3 }));
  assert.throws(() => addGaussianNoise(Float32Array.of(Number.NaN), 1));
});

test('no Math.random anywhere in the library sources', () => {
  // Compiled tests run from dist/; the sources sit beside it in src/.
  const srcDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');
  const files = readdirSync(srcDir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
  assert.ok(files.length >= 6, `expected library sources in ${srcDir}`);
  for (const f of files) {
    const text = readFileSync(join(srcDir, f), 'utf8');
    assert.ok(!/Math\s*\.\s*random/.test(text), `${f} uses Math.random`);
  }
});
