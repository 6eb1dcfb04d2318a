import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeSum, encode, fixedPointLevels, fixedPointScale, quantizationErrorBound } from './fixed-point.js';
import { seededRandom } from './random.js';
import { addInto } from './ring.js';
import { seedOf } from './test-support.js';

const params = { clipRange: 0.5, maxSummands: 100 };

test('encoding clips to the range and decodes within one step', () => {
  const values = new Float32Array([-3, -0.5, -0.123456, 0, 0.25, 0.4999, 0.5, 7]);
  const decoded = decodeSum(encode(values, params, seededRandom(seedOf('fp/1'))), 1, params);
  const clipped = [-0.5, -0.5, -0.123456, 0, 0.25, 0.4999, 0.5, 0.5];
  const step = 1 / fixedPointScale(params);
  decoded.forEach((d, i) => assert.ok(Math.abs(d - clipped[i]!) <= step + 1e-7, `coordinate ${i}: ${d} vs ${clipped[i]}`));
});

test('stochastic rounding is unbiased', () => {
  // A value halfway between two steps rounds up about half the time.
  const step = 1 / fixedPointScale(params);
  const x = Math.fround(0.1 + step / 2);
  const n = 20_000;
  const values = new Float32Array(n).fill(x);
  const codes = encode(values, params, seededRandom(seedOf('fp/unbiased')));
  const lo = Math.min(...codes);
  let ups = 0;
  for (const c of codes) {
    assert.ok(c === lo || c === lo + 1);
    if (c === lo + 1) ups++;
  }
  const expectedUp = ((x + params.clipRange) * fixedPointScale(params)) % 1;
  assert.ok(Math.abs(ups / n - expectedUp) < 0.02, `rounded up ${ups / n}, expected ${expectedUp}`);
});

test('a sum of maxSummands extreme vectors does not wrap', () => {
  const levels = fixedPointLevels(params);
  assert.ok(levels * params.maxSummands <= 2 ** 32 - 1);
  const top = encode(new Float32Array([10, 10]), params);
  assert.deepEqual([...top], [levels, levels]);
  const sum = new Uint32Array(2);
  for (let i = 0; i < params.maxSummands; i++) addInto(sum, top);
  const decoded = decodeSum(sum, params.maxSummands, params);
  assert.ok(Math.abs(decoded[0]! - params.maxSummands * params.clipRange) < 1e-4);
});

test('the decoded sum of many vectors stays within the stated bound', () => {
  const random = seededRandom(seedOf('fp/sum'));
  const count = 37;
  const sum = new Uint32Array(64);
  const exact = new Float64Array(64);
  for (let c = 0; c < count; c++) {
    const v = new Float32Array(64).map((_, i) => Math.sin(c * 64 + i) * 0.6);
    addInto(sum, encode(v, params, random));
    v.forEach((x, i) => (exact[i]! += Math.max(-0.5, Math.min(0.5, x))));
  }
  const decoded = decodeSum(sum, count, params);
  const bound = quantizationErrorBound(params, count) + 1e-5;
  decoded.forEach((d, i) => assert.ok(Math.abs(d - exact[i]!) <= bound));
});

test('non-finite coordinates and impossible summand counts are refused', () => {
  assert.throws(() => encode(new Float32Array([0, NaN]), params), /coordinate 1 is NaN/);
  assert.throws(() => encode(new Float32Array([Infinity]), params), /only finite/);
  assert.throws(() => decodeSum(new Uint32Array(1), 101, params), /1 to 100 summands/);
  assert.throws(() => encode(new Float32Array(1), { clipRange: 0, maxSummands: 2 }), /clipRange/);
});
