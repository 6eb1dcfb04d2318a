import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '@fedmm/core';
import type { ContributionRepo, RoundView, TaskView, UpdateSource } from './ports.js';
import { Scorer, type ScorerOptions } from './scorer.js';
import type { ContributionState } from './types.js';

const LAYOUT = { tensors: [{ name: 'a', shape: [2] }, { name: 'b', shape: [2] }] };

function memoryRepo(): ContributionRepo {
  const docs = new Map<string, ContributionState>();
  return {
    get: (id) => Promise.resolve(docs.get(id)),
    update: (id, fn) => {
      const next = fn(docs.get(id));
      docs.set(id, next);
      return Promise.resolve(next);
    },
  };
}

function setup(task: TaskView, round: RoundView, updates: Record<string, number[]>, overrides: Partial<ScorerOptions> = {}) {
  const rules: { tenant: string; tier: string; versionDelayRounds: number }[] = [];
  const audit: string[] = [];
  const source: UpdateSource = {
    list: () => Promise.resolve(round.received.map((r) => ({ client: r.tenant, attempt: round.attempt, sha256: r.sha256, shards: [0] }))),
    read: (_t, _r, client) => Promise.resolve(Float32Array.from(updates[client]!)),
    removeRound: () => Promise.resolve(),
  };
  const scorer = new Scorer({
    rounds: { task: () => Promise.resolve(task), round: () => Promise.resolve(round) },
    params: () => Promise.resolve(new Map([['a', new Float32Array(2)], ['b', new Float32Array(2)]])),
    updates: source,
    // A linear metric: the sum of all parameters. v is additive, so every Shapley estimator must return w_i/W * sum(u_i).
    evaluators: () => Promise.resolve({ metric: 'sum', evaluator: (p) => Promise.resolve([...p.values()].reduce((s, t) => s + t.reduce((x, y) => x + y, 0), 0)) }),
    secure: { groups: () => Promise.reject(new Error('not secure')), aggregateOfGroups: () => Promise.reject(new Error('not secure')) },
    accessRules: (r) => {
      rules.push(r);
      return Promise.resolve();
    },
    audit: { append: (_t, kind) => Promise.resolve(audit.push(kind)) },
    repo: memoryRepo(),
    log: createLogger({}, 'error'),
    exactMaxCompanies: 6,
    updateWaitMs: 0,
    seed: 'test',
    ...overrides,
  });
  return { scorer, rules, audit };
}

const taskOf = (members: string[], extra: Partial<TaskView> = {}): TaskView => ({
  taskId: 't', modelId: 'm', members, termsJson: '', valuationMethod: '', secureAggregation: false, secaggThreshold: 2, ...extra,
});
const roundOf = (members: string[]): RoundView => ({
  number: 1, attempt: 1, state: 'published', inputVersionId: 'in', outputVersionId: 'out', layout: LAYOUT,
  received: members.map((m) => ({ tenant: m, sha256: `sha-${m}`, numExamples: 10, numShards: 1 })),
});

test('above the exact limit GTG-Shapley runs, and on an additive metric it finds the exact values', async () => {
  const members = Array.from({ length: 8 }, (_, i) => `c${i}`);
  const updates = Object.fromEntries(members.map((m, i) => [m, [i * 0.5, 0.1, 0.2, i === 3 ? -1 : 0.3]]));
  const { scorer, rules, audit } = setup(taskOf(members), roundOf(members), updates);
  const { round, table } = await scorer.scoreRound('t', 1);
  assert.equal(round.method, 'gtg');
  assert.equal(round.utility, 'validation:sum');
  for (const m of members) {
    const expected = updates[m]!.reduce((s, x) => s + x, 0) / members.length;
    assert.ok(Math.abs(round.values[m]! - expected) < 1e-5, `${m}: ${round.values[m]} vs ${expected}`);
  }
  assert.equal(table.length, 8);
  assert.equal(rules.length, 8, 'every member gets an access rule');
  assert.deepEqual(audit, ['contribution.recorded', 'reward.assigned']);
  await scorer.scoreRound('t', 1);
  assert.equal(audit.length, 2, 'a round scored twice is recorded once');
});

test('under secure aggregation Shapley runs over groups and never reads an update', async () => {
  const members = ['a1', 'a2', 'b1', 'b2'];
  const groups = [{ id: 'g1', members: ['a1', 'a2'] }, { id: 'g2', members: ['b1', 'b2'] }];
  const groupDelta: Record<string, number[]> = { g1: [1, 1, 0, 0], g2: [0, 0, 0, 0.5] };
  const { scorer } = setup(taskOf(members, { secureAggregation: true }), roundOf(members), {}, {
    updates: { list: () => Promise.reject(new Error('read')), read: () => Promise.reject(new Error('an individual update was read')), removeRound: () => Promise.reject(new Error('read')) },
    secure: {
      groups: () => Promise.resolve(groups),
      aggregateOfGroups: (_t, _r, ids) => {
        const sum = [0, 0, 0, 0];
        for (const id of ids) groupDelta[id]!.forEach((x, i) => (sum[i]! += x));
        return Promise.resolve(new Map([['a', Float32Array.from(sum.slice(0, 2))], ['b', Float32Array.from(sum.slice(2))]]));
      },
    },
  });
  const { round } = await scorer.scoreRound('t', 1);
  assert.equal(round.method, 'secure-group');
  assert.equal(round.secure, true);
  assert.deepEqual(round.values, { a1: 1, a2: 1, b1: 0.25, b2: 0.25 });
  assert.deepEqual(round.groups, groups);
});

test('an unknown valuation method and an unpublished round are refused', async () => {
  const bad = setup(taskOf(['x']), roundOf(['x']), { x: [1, 1, 1, 1] });
  const t = taskOf(['x'], { valuationMethod: 'vibes' });
  const s = setup(t, roundOf(['x']), { x: [1, 1, 1, 1] });
  await assert.rejects(s.scorer.scoreRound('t', 1), /valuation method "vibes"/);
  const open = setup(taskOf(['x']), { ...roundOf(['x']), state: 'aggregating' }, {});
  await assert.rejects(open.scorer.scoreRound('t', 1), /only a published round can be scored/);
  await assert.rejects(bad.scorer.scoreRound('t', 0), /rounds count from 1/);
});
