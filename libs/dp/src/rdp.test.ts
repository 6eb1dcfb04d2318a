import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedmmError } from '@fedmm/core';
import {
  DEFAULT_RDP_ORDERS,
  DP_ACCOUNTING_RDP_ORDERS,
  RdpAccountant,
  computeLogA,
  computeRdp,
  rdpToDelta,
  rdpToEpsilon,
} from './index.js';

const close = (actual: number, expected: number, tol: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, expected ${expected} +- ${tol}`);

// TF Privacy compute_dp_sgd_privacy_lib (commit ff99230): the order grid its tests ran on.
const TF_PRIVACY_ORDERS = [1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, ...Array.from({ length: 59 }, (_, i) => 5 + i), 128, 256, 512];

test('default orders are Opacus DEFAULT_ALPHAS: 1.1..10.9 then 12..63', () => {
  assert.equal(DEFAULT_RDP_ORDERS.length, 151);
  assert.equal(DEFAULT_RDP_ORDERS[0], 1.1);
  assert.equal(DEFAULT_RDP_ORDERS[98], 10.9);
  assert.equal(DEFAULT_RDP_ORDERS[99], 12);
  assert.equal(DEFAULT_RDP_ORDERS[150], 63);
  assert.equal(DP_ACCOUNTING_RDP_ORDERS.length, 99 + 53 + 4);
});

test('Opacus accountants_test.test_rdp_accountant: q=0.04, sigma=1.5, 2250 steps, delta=1e-5 -> 7.32911117143', () => {
  // Source: pytorch/opacus opacus/tests/accountants_test.py (assertAlmostEqual, 7 places).
  const acc = new RdpAccountant().compose({ samplingRate: 0.04, noiseMultiplier: 1.5, steps: 2250 });
  const { epsilon, order } = acc.getEpsilonAndOrder(1e-5);
  close(epsilon, 7.32911117143, 5e-8, 'epsilon');
  assert.equal(order, 3.9);
});

test('the absolute-value fractional series reproduces dp_accounting 0.6.0 on the same case (7.329334702381698)', () => {
  const acc = new RdpAccountant({ fractionalSeries: 'absolute' }).compose({ samplingRate: 0.04, noiseMultiplier: 1.5, steps: 2250 });
  close(acc.getEpsilon(1e-5), 7.329334702381698, 1e-9, 'epsilon');
});

test('TF Privacy compute_dp_sgd_privacy_test Test0/Test1/Test2 (epsilon and optimal order)', () => {
  // Source: tensorflow/privacy tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py.
  const cases = [
    { n: 60000, batch: 150, sigma: 1.3, epochs: 15, delta: 1e-5, eps: 0.7242234026109595, order: 19 },
    { n: 100000, batch: 100, sigma: 1.0, epochs: 30, delta: 1e-7, eps: 1.4154988495444842, order: 13 },
    { n: 100000000, batch: 1024, sigma: 0.1, epochs: 10, delta: 1e-7, eps: 5907982.3113978775, order: 1.25 },
  ];
  for (const c of cases) {
    const steps = Math.ceil((c.epochs * c.n) / c.batch);
    const acc = new RdpAccountant({ orders: TF_PRIVACY_ORDERS }).compose({ samplingRate: c.batch / c.n, noiseMultiplier: c.sigma, steps });
    const r = acc.getEpsilonAndOrder(c.delta);
    close(r.epsilon, c.eps, 1e-9 * Math.max(1, c.eps), `n=${c.n} epsilon`);
    assert.equal(r.order, c.order);
  }
});

test('TF Privacy rdp_accountant_test: compute_rdp sequence, scalar, no data, no sampling', () => {
  // Source: tensorflow/privacy tensorflow_privacy/privacy/analysis/rdp_accountant_test.py.
  const seq = computeRdp({ samplingRate: 0.01, noiseMultiplier: 2.5, steps: 50, orders: [1.5, 2.5, 5, 50, 100, Infinity] });
  const expected = [0.00065, 0.001085, 0.00218075, 0.023846, 167.416307];
  expected.forEach((e, i) => close(seq[i] as number, e, 1e-5, `order index ${i}`));
  assert.equal(seq[5], Infinity);
  close(computeRdp({ samplingRate: 0.1, noiseMultiplier: 2, steps: 10, orders: [5] })[0] as number, 0.07737, 5e-6, 'scalar');
  assert.equal(computeRdp({ samplingRate: 0, noiseMultiplier: 10, steps: 1, orders: [20] })[0], 0);
  assert.equal(computeRdp({ samplingRate: 1, noiseMultiplier: 10, steps: 1, orders: [20] })[0], 0.1);
});

test('dp_accounting rdp_privacy_accountant_test.test_compute_rdp_poisson_sampled_gaussian (integer orders)', () => {
  // Source: google/differential-privacy python/dp_accounting/.../rdp_privacy_accountant_test.py.
  const r = computeRdp({ samplingRate: 0.01, noiseMultiplier: 2.5, steps: 50, orders: [5, 50, 100] });
  [2.18075656e-3, 2.38460375e-2, 1.67416308e2].forEach((e, i) => close(r[i] as number, e, 1e-5 * e, `order index ${i}`));
});

test('log(A_alpha) agrees with multi-precision integration (TF Privacy / dp_accounting test_compute_log_a_equals_mp)', () => {
  // Expected values: mpmath 1.4.1 quad of the same integrand as the reference tests (rtol 1e-4 there).
  const cases: Array<[number, number, number, number]> = [
    [1e-7, 0.1, 1.01, 4.003415962982348e-8],
    [1e-6, 0.1, 256, 3260234.5099259755],
    [1e-5, 0.1, 256.1, 3263356.2822869574],
    [1e-6, 1, 27, 8.769502897783603e-10],
    [1e-4, 1.0, 1.5, 6.442687029768869e-9],
    [1e-3, 1.0, 2, 1.7182803521333247e-6],
    [0.01, 10, 20, 1.9129699912815486e-4],
    [0.1, 100, 20.5, 1.9991818458118805e-4],
    [0.99, 0.1, 256, 3263768.707742836],
    [0.999, 100, 256.1, 3.260108037973113],
  ];
  for (const [q, sigma, order, mp] of cases) {
    const got = computeLogA(q, sigma, order);
    assert.ok(Math.abs(got - mp) <= 1e-4 * Math.abs(mp) + 1e-8, `q=${q} sigma=${sigma} order=${order}: ${got} vs ${mp}`);
  }
});

test('pure-DP curve and exact Gaussian conversions (TF Privacy get_privacy_spent tests)', () => {
  const orders = Array.from({ length: 31 }, (_, i) => 2 + i);
  const flat = orders.map(() => 1.1);
  const r = rdpToEpsilon(orders, flat, 1e-5);
  close(r.epsilon, 1.32783806176, 1e-9, 'pure DP epsilon');
  assert.equal(r.order, 32);
  const back = rdpToDelta(orders, flat, 1.32783806176);
  close(back.delta, 1e-5, 1e-12, 'delta');
  const fine = Array.from({ length: 99000 }, (_, i) => 0.001 * (1000 + i)).filter((a) => a > 1);
  const g = computeRdp({ samplingRate: 1, noiseMultiplier: 4.530877117, steps: 1, orders: fine });
  close(rdpToEpsilon(fine, g, 1e-6).epsilon, 1, 1e-6, 'Gaussian (1, 1e-6)');
  close(rdpToDelta(fine, g, 1).delta, 1e-6, 1e-10, 'Gaussian delta');
});

test('heterogeneous composition equals the sum of per-event RDP and matches dp_accounting 0.6.0 (signed series)', () => {
  const acc = new RdpAccountant()
    .compose({ samplingRate: 0.01, noiseMultiplier: 1.0, steps: 100 })
    .compose({ samplingRate: 0.05, noiseMultiplier: 2.0, steps: 50 });
  const a = computeRdp({ samplingRate: 0.01, noiseMultiplier: 1.0, steps: 100 });
  const b = computeRdp({ samplingRate: 0.05, noiseMultiplier: 2.0, steps: 50 });
  acc.getRdp().forEach((v, i) => close(v, (a[i] as number) + (b[i] as number), 1e-15, `order ${i}`));
  // dp_accounting 0.6.0 with its fractional series patched to the signed sum gives 1.3882527267699363 at order 8.8.
  const r = acc.getEpsilonAndOrder(1e-5);
  close(r.epsilon, 1.3882527267699363, 1e-9, 'epsilon');
  assert.equal(r.order, 8.8);
});

test('epsilon is monotone: up in steps and sampling rate, down in noise', () => {
  const eps = (q: number, s: number, t: number): number =>
    new RdpAccountant().compose({ samplingRate: q, noiseMultiplier: s, steps: t }).getEpsilon(1e-5);
  let prev = 0;
  for (const t of [1, 10, 100, 1000, 10000]) {
    const e = eps(0.01, 1.1, t);
    assert.ok(e > prev, `steps ${t}`);
    prev = e;
  }
  prev = Infinity;
  for (const s of [0.6, 0.8, 1, 1.5, 3, 10]) {
    const e = eps(0.01, s, 1000);
    assert.ok(e < prev, `sigma ${s}`);
    prev = e;
  }
  prev = 0;
  for (const q of [1e-4, 1e-3, 1e-2, 0.1, 1]) {
    const e = eps(q, 1.1, 100);
    assert.ok(e > prev, `q ${q}`);
    prev = e;
  }
});

test('no NaN or overflow at orders up to 256 and q down to 1e-9', () => {
  const orders = [...DP_ACCOUNTING_RDP_ORDERS.filter((o) => o <= 256), 100.5, 255.5, 256];
  for (const q of [1e-9, 1e-6, 0.5, 0.999999]) {
    for (const sigma of [0.1, 0.5, 1, 10, 1000]) {
      const r = computeRdp({ samplingRate: q, noiseMultiplier: sigma, steps: 1000, orders });
      r.forEach((v, i) => assert.ok(!Number.isNaN(v) && v >= 0, `q=${q} sigma=${sigma} order=${orders[i]}: ${v}`));
      const e = rdpToEpsilon(orders, r, 1e-5).epsilon;
      assert.ok(!Number.isNaN(e) && e >= 0, `epsilon ${e}`);
    }
  }
  const tiny = new RdpAccountant().compose({ samplingRate: 1e-9, noiseMultiplier: 1, steps: 1000 }).getEpsilon(1e-5);
  assert.ok(Number.isFinite(tiny) && tiny < 1e-3, `tiny q epsilon ${tiny}`);
});

test('degenerate inputs: zero noise is infinite epsilon, zero steps is zero, bad arguments are INVALID_ARGUMENT', () => {
  assert.equal(new RdpAccountant().compose({ samplingRate: 0.1, noiseMultiplier: 0, steps: 1 }).getEpsilon(1e-5), Infinity);
  assert.equal(new RdpAccountant().compose({ samplingRate: 0.1, noiseMultiplier: 1, steps: 0 }).getEpsilon(1e-5), 0);
  for (const bad of [
    () => computeRdp({ samplingRate: 1.5, noiseMultiplier: 1, steps: 1 }),
    () => computeRdp({ samplingRate: 0.1, noiseMultiplier: -1, steps: 1 }),
    () => computeRdp({ samplingRate: 0.1, noiseMultiplier: 1, steps: 1.5 }),
    () => computeRdp({ samplingRate: 0.1, noiseMultiplier: 1, steps: 1, orders: [0.5] }),
    () => new RdpAccountant().getEpsilon(0),
  ]) {
    assert.throws(bad, (e: unknown) => isFedmmError(e) && e.code === 'INVALID_ARGUMENT');
  }
});

test('MNIST DP-SGD tutorial setting: q=256/60000, sigma=1.1, 60 epochs (14063 steps), delta=1e-5', () => {
  // dp_accounting 0.6.0 (signed series, its default orders) gives 2.596655528688368 at order 8.1; the
  // TF Privacy tutorial's older figure (~3.01) used the pre-Balle conversion rdp - log(delta)/(a-1).
  const r = new RdpAccountant().compose({ samplingRate: 256 / 60000, noiseMultiplier: 1.1, steps: 14063 }).getEpsilonAndOrder(1e-5);
  close(r.epsilon, 2.596655528688368, 1e-8, 'epsilon');
  assert.equal(r.order, 8.1);
});
