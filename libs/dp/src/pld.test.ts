import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PldAccountant, RdpAccountant, subsampledGaussianPmfs } from './index.js';

const close = (actual: number, expected: number, tol: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, expected ${expected} +- ${tol}`);

test('dp_accounting pld_privacy_accountant_test.test_gaussian_basic: sigma sqrt(3) composed 1+2 times, delta(1) = 0.126936', () => {
  // Source: google/differential-privacy python/dp_accounting/dp_accounting/pld/pld_privacy_accountant_test.py
  // (tolerance 1e-3 there); dp_accounting 0.6.0 itself returns 0.12693673780007303.
  const acc = new PldAccountant()
    .compose({ samplingRate: 1, noiseMultiplier: Math.sqrt(3), steps: 1 })
    .compose({ samplingRate: 1, noiseMultiplier: Math.sqrt(3), steps: 2 });
  close(acc.getDeltaForEpsilon(1), 0.126936, 1e-6, 'delta');
  close(acc.getDeltaForEpsilon(1), 0.12693673780007303, 1e-8, 'delta vs dp_accounting 0.6.0');
  close(acc.getEpsilonForDelta(0.126936), 1, 1e-3, 'epsilon');
  // Exact: three sqrt(3) Gaussians are one sigma=1 Gaussian, delta(1) = Phi(-1/2) - e Phi(-3/2) = 0.12693673...
  assert.ok(acc.getDeltaForEpsilon(1) >= 0.1269367, 'pessimistic estimate must not fall below the exact delta');
});

test('dp_accounting test_poisson_subsampled_gaussian: q=0.2, sigma=0.5, 3 steps, delta(1) = 0.15594', () => {
  // Same source; dp_accounting 0.6.0 returns 0.15593277616591222.
  const acc = new PldAccountant()
    .compose({ samplingRate: 0.2, noiseMultiplier: 0.5, steps: 1 })
    .compose({ samplingRate: 0.2, noiseMultiplier: 0.5, steps: 2 });
  close(acc.getDeltaForEpsilon(1), 0.15594, 1e-3, 'delta');
  close(acc.getDeltaForEpsilon(1), 0.15593277616591222, 1e-8, 'delta vs dp_accounting 0.6.0');
  close(acc.getEpsilonForDelta(0.15594), 1, 1e-3, 'epsilon');
});

test('TF Privacy compute_dp_sgd_privacy_test no_microbatching_with_subsampling_pld: q=0.01, sigma=0.7, 120 steps -> 2.4612381', () => {
  // Source: tensorflow/privacy .../compute_dp_sgd_privacy_test.py (num_epochs 1.2, delta 1e-5; steps = ceil(1.2 / q)).
  const acc = new PldAccountant().compose({ samplingRate: 0.01, noiseMultiplier: 0.7, steps: 120 });
  close(acc.getEpsilonForDelta(1e-5), 2.4612381, 1e-6, 'epsilon');
});

test('Opacus RDP case under PLD matches dp_accounting 0.6.0 (6.768787373891152) and is tighter than RDP', () => {
  const pld = new PldAccountant().compose({ samplingRate: 0.04, noiseMultiplier: 1.5, steps: 2250 }).getEpsilonForDelta(1e-5);
  close(pld, 6.768787373891152, 1e-6, 'epsilon');
  const rdp = new RdpAccountant().compose({ samplingRate: 0.04, noiseMultiplier: 1.5, steps: 2250 }).getEpsilon(1e-5);
  assert.ok(pld < rdp, `PLD ${pld} should be below RDP ${rdp}`);
});

test('heterogeneous composition matches dp_accounting 0.6.0', () => {
  // dp_accounting 0.6.0: PoissonSampled(0.01, Gaussian(1)) x100 then PoissonSampled(0.05, Gaussian(2)) x50.
  const acc = new PldAccountant()
    .compose({ samplingRate: 0.01, noiseMultiplier: 1.0, steps: 100 })
    .compose({ samplingRate: 0.05, noiseMultiplier: 2.0, steps: 50 });
  close(acc.getEpsilonForDelta(1e-5), 0.9986412670776995, 1e-6, 'epsilon');
  close(acc.getDeltaForEpsilon(1), 9.842935064772653e-6, 1e-10, 'delta');
});

test('single-step PMFs are probability distributions and ADD differs from REMOVE under subsampling', () => {
  const { remove, add } = subsampledGaussianPmfs(0.1, 1.0, { valueDiscretizationInterval: 1e-3 });
  for (const pmf of [remove, add]) {
    let total = pmf.infinityMass;
    for (const p of pmf.probs) {
      assert.ok(p >= 0);
      total += p;
    }
    close(total, 1, 1e-9, 'total mass');
  }
  assert.notEqual(remove.lowerIndex, add.lowerIndex);
});

test('coarser discretization is still pessimistic (never below the fine estimate)', () => {
  const fine = new PldAccountant({ valueDiscretizationInterval: 1e-4 }).compose({ samplingRate: 0.05, noiseMultiplier: 1, steps: 200 });
  const coarse = new PldAccountant({ valueDiscretizationInterval: 1e-2 }).compose({ samplingRate: 0.05, noiseMultiplier: 1, steps: 200 });
  assert.ok(coarse.getEpsilonForDelta(1e-5) >= fine.getEpsilonForDelta(1e-5) - 1e-9);
  assert.ok(coarse.getDeltaForEpsilon(1) >= fine.getDeltaForEpsilon(1) - 1e-12);
});

test('empty, zero-rate and zero-noise accountants', () => {
  assert.equal(new PldAccountant().getEpsilonForDelta(1e-5), 0);
  assert.equal(new PldAccountant().compose({ samplingRate: 0, noiseMultiplier: 1, steps: 10 }).getDeltaForEpsilon(0), 0);
  assert.equal(new PldAccountant().compose({ samplingRate: 0.1, noiseMultiplier: 0, steps: 1 }).getEpsilonForDelta(1e-5), Infinity);
});
