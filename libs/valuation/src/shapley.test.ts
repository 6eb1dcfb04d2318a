import assert from 'node:assert/strict';
import { test } from 'node:test';
import { exactShapley } from './exact-shapley.js';
import { gtgShapley } from './gtg-shapley.js';
import { leaveOneOut } from './leave-one-out.js';
import { monteCarloShapley } from './monte-carlo-shapley.js';
import type { ValuationResult } from './result.js';
import { spearman } from './stats.js';
import { roundShare, SubsetModelUtility } from './subset-model-utility.js';
import { logisticFederation } from './testing/logistic-federation.js';
import { CachedUtility, type Utility } from './utility.js';

const sum = (r: ValuationResult): number => Object.values(r.values).reduce((s, v) => s + v, 0);
const lowest = (r: ValuationResult): string =>
  Object.entries(r.values).reduce((best, cur) => (cur[1] < best[1] ? cur : best))[0];

// Six companies of one round: different amounts of clean data, two with the very same data, one with random labels.
const mixed = logisticFederation({
  seed: 7,
  companies: [
    { id: 'small', samples: 40 },
    { id: 'medium', samples: 120 },
    { id: 'twin-a', samples: 80 },
    { id: 'twin-b', samples: 0, sameDataAs: 'twin-a' },
    { id: 'large', samples: 300 },
    { id: 'random-labels', samples: 200, randomLabels: true },
  ],
});
const mixedUtility = new SubsetModelUtility({
  previous: mixed.previous,
  updates: mixed.updates,
  evaluate: mixed.negLogLoss,
});

test('exact Shapley on known games', async () => {
  const additive: Utility = (s) => Promise.resolve(s.reduce((acc, p) => acc + Number(p.slice(1)), 0));
  const r = await exactShapley(['p1', 'p2', 'p5'], additive);
  assert.deepEqual(Object.values(r.values).map((v) => Math.round(v * 1e9) / 1e9), [1, 2, 5]);
  const majority: Utility = (s) => Promise.resolve(s.length >= 2 ? 1 : 0);
  const m = await exactShapley(['a', 'b', 'c'], majority, { concurrency: 3 });
  for (const v of Object.values(m.values)) assert.ok(Math.abs(v - 1 / 3) < 1e-12);
  assert.equal(m.evaluations, 8);
});

test('exact Shapley refuses federations it cannot enumerate', async () => {
  const players = Array.from({ length: 21 }, (_, i) => `c${i}`);
  await assert.rejects(exactShapley(players, () => Promise.resolve(0)), /gtgShapley or monteCarloShapley/);
});

test('a company with random labels gets the lowest value under every method', async () => {
  const players = mixedUtility.players;
  const cache = new CachedUtility(mixedUtility.utility);
  const results = [
    await exactShapley(players, cache),
    await gtgShapley(players, cache),
    await monteCarloShapley(players, cache, { permutations: 30, seed: 3 }),
    await leaveOneOut(players, cache),
  ];
  for (const r of results) {
    assert.equal(lowest(r), 'random-labels', `${r.method}: ${JSON.stringify(r.values)}`);
    assert.ok((r.values['random-labels'] ?? 0) < 0, `${r.method} should value a harmful update below zero`);
  }
});

test('two companies with identical data get equal values (symmetry)', async () => {
  const r = await exactShapley(mixedUtility.players, mixedUtility.utility);
  const a = r.values['twin-a'] ?? Number.NaN;
  const b = r.values['twin-b'] ?? Number.NaN;
  assert.ok(Math.abs(a - b) < 1e-6, `twin values ${a} and ${b} differ`);
  assert.ok(a > 0);
});

test('values add up to v(all) - v(none) (efficiency)', async () => {
  const cache = new CachedUtility(mixedUtility.utility);
  const exact = await exactShapley(mixedUtility.players, cache);
  assert.ok(Math.abs(sum(exact) - (exact.fullValue - exact.emptyValue)) < 1e-9);
  const mc = await monteCarloShapley(mixedUtility.players, cache, { permutations: 7 });
  assert.ok(Math.abs(sum(mc) - (mc.fullValue - mc.emptyValue)) < 1e-9, 'every permutation sums to the span');
  const gtgEpsilon = 0.01;
  const gtg = await gtgShapley(mixedUtility.players, cache, { withinRoundEpsilon: gtgEpsilon });
  assert.ok(Math.abs(sum(gtg) - (gtg.fullValue - gtg.emptyValue)) <= gtgEpsilon, 'truncation loses at most epsilon');
});

test('a company that sends a zero update gets zero (null player)', async () => {
  const fed = logisticFederation({
    seed: 11,
    companies: [
      { id: 'a', samples: 60 },
      { id: 'b', samples: 150 },
      { id: 'c', samples: 300 },
      { id: 'zero', samples: 200, zeroUpdate: true },
    ],
  });
  const total = fed.updates.reduce((s, u) => s + u.weight, 0);
  const shares = new SubsetModelUtility({ ...fed, evaluate: fed.negLogLoss, aggregate: roundShare(total) });
  const exact = await exactShapley(shares.players, shares.utility);
  const gtg = await gtgShapley(shares.players, shares.utility);
  const span = exact.fullValue - exact.emptyValue;
  for (const r of [exact, gtg]) {
    assert.ok(Math.abs(r.values['zero'] ?? 1) <= 1e-9 * Math.abs(span), `${r.method}: ${r.values['zero']}`);
    assert.ok((r.values['c'] ?? 0) > 0);
  }
  // Averaged over the subset instead, a zero update dilutes the others: the free rider loses value.
  const mean = new SubsetModelUtility({ ...fed, evaluate: fed.negLogLoss });
  const diluted = await exactShapley(mean.players, mean.utility);
  assert.ok((diluted.values['zero'] ?? 0) < 0, `diluting update valued ${diluted.values['zero']}`);
});

test('GTG-Shapley agrees with exact Shapley on 6 companies with fewer evaluations', async () => {
  const fed = logisticFederation({
    seed: 3,
    companies: [0, 0.15, 0.3, 0.45, 0.6, 1].map((noise) => ({ id: `noise-${noise}`, samples: 150, labelNoise: noise })),
  });
  const u = new SubsetModelUtility({ ...fed, evaluate: fed.negLogLoss });
  const exact = await exactShapley(u.players, u.utility);
  const gtg = await gtgShapley(u.players, u.utility, { withinRoundEpsilon: 0.02, convergenceCriterion: 0.1 });
  const rho = spearman(exact.values, gtg.values);
  console.log(
    `GTG-Shapley ${gtg.evaluations} evaluations (${gtg.permutations} permutations) vs exact ${exact.evaluations}; rank correlation ${rho.toFixed(3)}`,
  );
  assert.ok(rho >= 0.9, `rank correlation ${rho}`);
  assert.ok(gtg.evaluations < exact.evaluations, `${gtg.evaluations} evaluations`);
  assert.equal(gtg.converged, true);
});

test('GTG-Shapley skips a round that did not move the metric (between-round truncation)', async () => {
  const cache = new CachedUtility((s) => Promise.resolve(0.8 + s.length * 1e-5));
  const r = await gtgShapley(['a', 'b', 'c', 'd'], cache, { betweenRoundThreshold: 0.001 });
  assert.equal(r.truncated, true);
  assert.equal(r.evaluations, 2);
  assert.deepEqual(Object.values(r.values), [0, 0, 0, 0]);
});

test('GTG-Shapley stops at maxPermutations when it cannot converge, and says so', async () => {
  let draw = 0;
  // A utility that is not a function of the subset (fresh noise per evaluation) never settles.
  const noisy: Utility = (s) => Promise.resolve(s.length + Math.sin(++draw * 12.9898) * 3);
  const r = await gtgShapley(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], noisy, {
    withinRoundEpsilon: 0,
    minPermutations: 8,
    maxPermutations: 8,
    convergenceCriterion: 0,
  });
  assert.equal(r.permutations, 8);
  assert.equal(r.converged, false);
});

test('Monte Carlo Shapley is reproducible by seed and honours its stopping rules', async () => {
  const u = mixedUtility.utility;
  const a = await monteCarloShapley(mixedUtility.players, u, { permutations: 12, seed: 'round-4' });
  const b = await monteCarloShapley(mixedUtility.players, u, { permutations: 12, seed: 'round-4' });
  assert.deepEqual(a.values, b.values);
  assert.equal(a.permutations, 12);
  const tol = await monteCarloShapley(mixedUtility.players, u, { tolerance: 0.01, maxPermutations: 400 });
  assert.equal(tol.converged, true);
  assert.ok((tol.permutations ?? 0) >= 10);
  await assert.rejects(monteCarloShapley(['a'], u, { permutations: 3, tolerance: 0.1 }), /either permutations or tolerance/);
});
