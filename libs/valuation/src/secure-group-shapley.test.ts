import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { clientScoredEvaluate } from './client-scored.js';
import { formSecureGroups, type SecureGroup, type SecureGroupShapleyInput, secureGroupShapley } from './secure-group-shapley.js';
import type { ClientUpdate } from './subset-model-utility.js';
import { addDelta } from './subset-model-utility.js';
import { logisticFederation } from './testing/logistic-federation.js';

// Compile-time guarantee: no field of the secure input can carry a per-company update.
type CarriesClientUpdate<T> = {
  [K in keyof T]-?: NonNullable<T[K]> extends ClientUpdate | readonly ClientUpdate[] | ReadonlyMap<string, Float32Array> ? K : never;
}[keyof T];
const noPerClientField: [CarriesClientUpdate<SecureGroupShapleyInput>] extends [never] ? true : false = true;

/**
 * Secure aggregation as the platform sees it: each company's weighted update arrives masked with
 * pairwise masks that cancel only when the whole group is summed.
 */
function maskedGroupAggregation(updates: readonly ClientUpdate[], groups: readonly SecureGroup[]) {
  const dim = updates[0]?.update.length ?? 0;
  const masked = new Map<string, Float64Array>();
  for (const g of groups) {
    const members = updates.filter((u) => g.members.includes(u.client));
    for (const u of members) masked.set(u.client, Float64Array.from(u.update, (x) => x * u.weight));
    for (let i = 0; i < members.length; i++) {
      for (let j = i + 1; j < members.length; j++) {
        const mask = new Float64Array(randomBytes(dim * 8).buffer).map((x) => (Number.isFinite(x) ? (x % 1e3) : 7));
        const a = masked.get(members[i]?.client ?? '') as Float64Array;
        const b = masked.get(members[j]?.client ?? '') as Float64Array;
        mask.forEach((m, k) => {
          a[k] = (a[k] ?? 0) + m;
          b[k] = (b[k] ?? 0) - m;
        });
      }
    }
  }
  const weightOf = new Map(updates.map((u) => [u.client, u.weight]));
  const requests: string[][] = [];
  const aggregateOfGroups = (groupIds: readonly string[]): Promise<Float32Array> => {
    requests.push([...groupIds]);
    const sum = new Float64Array(dim);
    let weight = 0;
    for (const id of groupIds) {
      const g = groups.find((x) => x.id === id);
      assert.ok(g, `unknown group ${id}`);
      for (const m of g.members) {
        (masked.get(m) as Float64Array).forEach((x, k) => {
          sum[k] = (sum[k] ?? 0) + x;
        });
        weight += weightOf.get(m) ?? 0;
      }
    }
    return Promise.resolve(Float32Array.from(sum, (x) => x / weight));
  };
  return { aggregateOfGroups, requests, masked };
}

test('secure-group valuation never receives an individual update', async () => {
  assert.equal(noPerClientField, true);
  const fed = logisticFederation({
    seed: 5,
    companies: [
      { id: 'a', samples: 200 },
      { id: 'b', samples: 200 },
      { id: 'c', samples: 200 },
      { id: 'd', samples: 200 },
      { id: 'e', samples: 200 },
      { id: 'noisy', samples: 200, randomLabels: true },
    ],
  });
  const groups: SecureGroup[] = [
    { id: 'g1', members: ['a', 'b'] },
    { id: 'g2', members: ['c', 'd'] },
    { id: 'g3', members: ['e', 'noisy'] },
  ];
  const platform = maskedGroupAggregation(fed.updates, groups);
  const individualModels = fed.updates.map((u) => addDelta(fed.previous, u.update));
  const evaluated: Float32Array[] = [];
  const result = await secureGroupShapley({
    groups,
    threshold: 2,
    previous: fed.previous,
    aggregateOfGroups: platform.aggregateOfGroups,
    evaluate: (params) => {
      evaluated.push(params);
      return fed.negLogLoss(params);
    },
    method: { kind: 'exact' },
  });
  // Every request names whole groups only, and no candidate model is one company's own model.
  for (const r of platform.requests) assert.ok(r.every((id) => groups.some((g) => g.id === id)));
  assert.equal(platform.requests.length, 7);
  const close = (x: Float32Array, y: Float32Array): boolean => x.every((v, k) => Math.abs(v - (y[k] ?? 0)) < 1e-4);
  for (const p of evaluated) for (const own of individualModels) assert.ok(!close(p, own));
  // Masks cancel: the group carrying the random-label company is valued lowest, its members equally.
  assert.ok((result.groupValues['g3'] ?? 0) < (result.groupValues['g1'] ?? 0));
  assert.ok((result.groupValues['g3'] ?? 0) < (result.groupValues['g2'] ?? 0));
  assert.equal(result.values['e'], result.values['noisy']);
  assert.equal(result.values['e'], (result.groupValues['g3'] ?? 0) / 2);
  const total = Object.values(result.values).reduce((s, v) => s + v, 0);
  assert.ok(Math.abs(total - (result.fullValue - result.emptyValue)) < 1e-6);
});

test('random regrouping every round singles out the harmful company in cumulative values', async () => {
  const companies = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'noisy'];
  const cumulative = new Map<string, number>();
  for (let round = 1; round <= 6; round++) {
    const fed = logisticFederation({
      seed: 100 + round,
      companies: companies.map((id) => ({ id, samples: 120, randomLabels: id === 'noisy' })),
    });
    const groups = formSecureGroups(companies, { threshold: 2, seed: `round-${round}` });
    const platform = maskedGroupAggregation(fed.updates, groups);
    const r = await secureGroupShapley({
      groups,
      threshold: 2,
      previous: fed.previous,
      aggregateOfGroups: platform.aggregateOfGroups,
      evaluate: fed.negLogLoss,
      method: { kind: 'exact' },
    });
    for (const [id, v] of Object.entries(r.values)) cumulative.set(id, (cumulative.get(id) ?? 0) + v);
  }
  const ranked = [...cumulative].sort((x, y) => x[1] - y[1]);
  assert.equal(ranked[0]?.[0], 'noisy', JSON.stringify(ranked));
});

test('groups below the threshold or sharing a company are refused', async () => {
  const base = {
    threshold: 3,
    previous: new Float32Array(2),
    aggregateOfGroups: () => Promise.resolve(new Float32Array(2)),
    evaluate: () => Promise.resolve(0),
  };
  await assert.rejects(
    secureGroupShapley({ ...base, groups: [{ id: 'g1', members: ['a', 'b'] }] }),
    /below the secure-aggregation threshold 3/,
  );
  await assert.rejects(
    secureGroupShapley({
      ...base,
      groups: [
        { id: 'g1', members: ['a', 'b', 'c'] },
        { id: 'g2', members: ['c', 'd', 'e'] },
      ],
    }),
    /groups must be disjoint/,
  );
  assert.throws(() => formSecureGroups(['a', 'b'], { threshold: 3 }), /fewer than the secure-aggregation threshold/);
});

test('formSecureGroups partitions every company into groups of at least the threshold', () => {
  const clients = Array.from({ length: 11 }, (_, i) => `c${i}`);
  const groups = formSecureGroups(clients, { threshold: 3, seed: 1 });
  assert.equal(groups.length, 3);
  assert.ok(groups.every((g) => g.members.length >= 3));
  assert.deepEqual(groups.flatMap((g) => g.members).sort(), [...clients].sort());
  assert.deepEqual(formSecureGroups(clients, { threshold: 3, seed: 1 }), groups);
});

test('companies scoring candidates on their own data: trimmed mean resists one misreport', async () => {
  const honest = (score: number) => () => Promise.resolve(score);
  const evaluate = clientScoredEvaluate({
    scorers: new Map([
      ['a', honest(0.8)],
      ['b', honest(0.82)],
      ['c', honest(0.78)],
      ['d', honest(0.81)],
      ['liar', honest(100)],
    ]),
    trim: 0.2,
    quorum: 4,
  });
  const v = await evaluate(new Float32Array(1));
  assert.ok(Math.abs(v - (0.8 + 0.81 + 0.82) / 3) < 1e-12);
  const failing = clientScoredEvaluate({
    scorers: new Map([
      ['a', honest(0.8)],
      ['b', () => Promise.reject(new Error('offline'))],
    ]),
  });
  await assert.rejects(failing(new Float32Array(1)), /quorum is 2/);
});
