import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clipPerExample, clipUpdate, privatizeBatchGradient } from './index.js';

const norm = (v: Float32Array): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

test('per-example clipping bound holds for every example, including huge and tiny norms', () => {
  const grads = [
    Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1e3),
    Float32Array.from({ length: 1000 }, (_, i) => (i % 7) * 1e-4),
    Float32Array.from({ length: 1000 }, () => 3.3e4),
    new Float32Array(1000),
  ];
  const { clipped, factors, norms } = clipPerExample(grads, 1.0);
  clipped.forEach((c, k) => assert.ok(norm(c) <= 1.0, `example ${k} norm ${norm(c)}`));
  assert.equal(factors[1], 1);
  assert.equal(factors[3], 1);
  assert.ok((factors[0] as number) < 1 && Math.abs((factors[0] as number) - 1 / (norms[0] as number)) < 1e-12);
  assert.deepEqual(Array.from(clipped[1] as Float32Array), Array.from(grads[1] as Float32Array), 'small gradients pass unchanged');
  assert.ok(Math.abs(norm(clipped[0] as Float32Array) - 1) < 1e-5, 'clipped gradients land on the sphere');
});

test('privatizeBatchGradient: mean of clipped sum plus noise of std sigma*C/batch', () => {
  const dim = 50_000;
  const batch = Array.from({ length: 4 }, () => new Float32Array(dim).fill(1));
  const out = privatizeBatchGradient(batch, 2.0, 1.5);
  // Each gradient has norm sqrt(dim) and is clipped to 2, so each coordinate is 2/sqrt(dim) before noise.
  const clean = 2 / Math.sqrt(dim);
  let s = 0;
  let s2 = 0;
  for (const v of out) {
    s += v - clean;
    s2 += (v - clean) ** 2;
  }
  const variance = s2 / dim - (s / dim) ** 2;
  const expected = (1.5 * 2.0 / 4) ** 2;
  assert.ok(Math.abs(variance - expected) < 5 * expected * Math.sqrt(2 / dim), `variance ${variance} vs ${expected}`);
  assert.ok(Math.abs(s / dim) < 5 * Math.sqrt(expected / dim), 'noise is centred');
  const empty = privatizeBatchGradient([], 1, 1, { dimension: 8, normalizer: 2 });
  assert.equal(empty.length, 8);
  assert.throws(() => privatizeBatchGradient([], 1, 1));
  assert.throws(() => privatizeBatchGradient(batch, 1, 0));
});

test('clipUpdate bounds client updates and reports the factor', () => {
  const u = Float32Array.from({ length: 10_000 }, (_, i) => Math.cos(i));
  const r = clipUpdate(u, 0.5);
  assert.ok(norm(r.clipped) <= 0.5);
  assert.ok(Math.abs(r.factor - 0.5 / r.norm) < 1e-12);
  const small = clipUpdate(Float32Array.of(0.1, 0.1), 1);
  assert.equal(small.factor, 1);
  assert.throws(() => clipUpdate(Float32Array.of(Number.POSITIVE_INFINITY), 1));
});
