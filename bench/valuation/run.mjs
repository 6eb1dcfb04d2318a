// Valuation cost per round: model evaluations and wall time of exact, Monte Carlo and GTG-Shapley
// as the federation grows. Build first: npx tsc -b libs/valuation; run: node bench/valuation/run.mjs
// The utility is a real one (logistic regression rebuilt from each subset's updates, scored on a
// held validation set) kept small, so that exact Shapley at 16 companies (65536 subsets) finishes.
import { performance } from 'node:perf_hooks';
import { exactShapley, gtgShapley, monteCarloShapley, SubsetModelUtility, spearman } from '@fedmm/valuation';
import { logisticFederation } from '@fedmm/valuation/testing';

const sizes = (process.env.SIZES ?? '4,8,16').split(',').map(Number);
const rows = [];
for (const n of sizes) {
  const fed = logisticFederation({
    seed: n,
    features: 8,
    validationSamples: 200,
    companies: Array.from({ length: n }, (_, i) => ({ id: `c${i}`, samples: 50 + 25 * (i % 5), labelNoise: i === n - 1 ? 1 : (i % 4) * 0.15 })),
  });
  const u = new SubsetModelUtility({ ...fed, evaluate: fed.negLogLoss });
  const run = async (name, fn) => {
    const t0 = performance.now();
    const r = await fn(u.utility);
    return { name, r, ms: performance.now() - t0 };
  };
  const exact = await run('exact', (x) => exactShapley(u.players, x));
  const mc = await run('monte-carlo', (x) => monteCarloShapley(u.players, x, { tolerance: 0.002, maxPermutations: 2000, seed: 1 }));
  const gtg = await run('gtg', (x) => gtgShapley(u.players, x, { withinRoundEpsilon: 0.01, seed: 1 }));
  for (const m of [exact, mc, gtg]) {
    rows.push({
      companies: n,
      method: m.name,
      evaluations: m.r.evaluations,
      'evals vs exact': (m.r.evaluations / exact.r.evaluations).toFixed(3),
      permutations: m.r.permutations ?? '',
      'wall ms': m.ms.toFixed(0),
      'time vs exact': (m.ms / exact.ms).toFixed(3),
      'rank corr vs exact': spearman(exact.r.values, m.r.values).toFixed(3),
    });
  }
}
console.table(rows);
