// Secure aggregation in groups through the platform: the aggregator runs one SecAgg+ instance per
// disjoint group (privacy.secagg_group_size), stores each group's sum for valuation, and valuation
// runs Shapley over the groups of every round.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, waitFor } from '@fedmm/core';
import { task as tpb } from '@fedmm/proto';
import { getJson, storeKey } from '@fedmm/store';
import { fixedPointScale } from '@fedmm/secagg';
import { groupSumPrefix, roundKey, type GroupSumShard, type RoundRecord } from '@fedmm/aggregator-service';
import { createValuationModule, ValuationClient } from '@fedmm/valuation-service';
import { hostService, type HostedService } from '@fedmm/service-kit';
import { downloadTensors } from '../support/models.js';
import { startSecurePlatform, TENANTS, type SecurePlatform } from './platform.js';

const CLIP = 1;
const N = 4096;
const MEMBERS = TENANTS.slice(0, 4);
/** The company whose update pulls against everyone else's. */
const HARMFUL = MEMBERS[3]!;

/** A company's update in a round: the shared direction plus a little of its own, or its negation for the harmful company. */
function updateOf(tenant: string, round: number): Float32Array {
  const i = MEMBERS.indexOf(tenant);
  const u = new Float32Array(N);
  for (let j = 0; j < N; j++) {
    const shared = (0.4 / Math.sqrt(N)) * Math.sin(0.01 * j + round);
    const own = (0.1 / Math.sqrt(N)) * Math.cos(0.03 * j * (i + 1));
    u[j] = tenant === HARMFUL ? -shared : shared + own;
  }
  return u;
}

const flatOf = (p: SecurePlatform, tensors: Map<string, Float32Array>): Float32Array => {
  const out = new Float32Array(N);
  for (const e of p.layout.entries) out.set(tensors.get(e.name)!, e.offset);
  return out;
};

describe('secure aggregation in groups through the platform, valued by Shapley over group sums', { timeout: 180_000 }, () => {
  let p: SecurePlatform;
  let valuation: HostedService;
  let client: ValuationClient;
  let dataDir: string;

  before(async () => {
    p = await startSecurePlatform(14);
    dataDir = mkdtempSync(join(tmpdir(), 'fedmm-secagg-groups-'));
    valuation = await hostService(createValuationModule(), {
      FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_GRPC_PORT: '0', FEDMM_DATA_DIR: dataDir, FEDMM_SHUTDOWN_GRACE_MS: '500',
      FEDMM_REGISTRY_ADDR: p.registry.address, FEDMM_VALUATION_CONSUME: 'false',
    }, { bus: p.bus, store: p.store, log: createLogger({ test: 'secagg-groups' }, 'error') });
    client = new ValuationClient(valuation.address);
  });

  after(async () => {
    client?.close();
    await valuation?.stop();
    await p?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('groups of 2 among 4 companies: the model is the plain mean, each group sum is its members\' sum, and re-drawn groups leave the sign-flipped company lowest', async () => {
    const rounds = 6;
    const taskId = await p.openTask(MEMBERS, { clipNorm: CLIP, secaggThreshold: 2, secaggGroupSize: 2 }, 30, rounds);
    const partners = new Set<string>();
    let previous = flatOf(p, await downloadTensors(p.registry.address, p.baseVersion));
    // The step is off by less than one fixed-point step per group sum; plus float32 rounding.
    const bound = 2 / fixedPointScale({ clipRange: CLIP, maxSummands: 2 }) + 1e-6;
    let n = 0;
    // Rounds run until the harmful company has shared a group with two different companies, so
    // that every other company has been in a group without it at least once (at most 6 rounds).
    while (n < 2 || (partners.size < 2 && n < rounds)) {
      n += 1;
      await waitFor(async () => (await p.coordinator.getTask({ taskId })).task!.currentRound >= n, { timeoutMs: 20_000, intervalMs: 100, what: `round ${n} to open` });
      const updates = new Map(MEMBERS.map((m) => [m, updateOf(m, n)]));
      await Promise.all(MEMBERS.map((m) => p.runClient(taskId, m, updates.get(m)!, CLIP, 'never', n)));
      await waitFor(async () => {
        const r = (await p.coordinator.getRound({ taskId, number: n })).round!;
        if (r.state === tpb.RoundState.ROUND_STATE_FAILED) throw new Error(`round ${n} failed: ${r.failureReason}`);
        return r.state === tpb.RoundState.ROUND_STATE_PUBLISHED;
      }, { timeoutMs: 60_000, intervalMs: 200, what: `round ${n} to publish` });
      const record = (await getJson<RoundRecord>(p.store, roundKey(taskId, n)))!.value;

      // The partition: disjoint pairs covering the round, every group unmasked.
      const groups = record.secaggGroups!;
      assert.equal(record.secagg, undefined);
      assert.deepEqual(groups.map((g) => g.participants.length), [2, 2]);
      assert.deepEqual(groups.flatMap((g) => g.participants).sort(), [...MEMBERS].sort());
      assert.ok(groups.every((g) => g.stage === 'done'), `round ${n}: ${JSON.stringify(groups.map((g) => [g.group, g.stage, g.failure]))}`);
      partners.add(groups.find((g) => g.participants.includes(HARMFUL))!.participants.find((m) => m !== HARMFUL)!);

      // The published model is previous + the plain mean of the four updates.
      const out = flatOf(p, await downloadTensors(p.registry.address, record.outputVersionId));
      for (let j = 0; j < N; j++) {
        const mean = MEMBERS.reduce((s, m) => s + updates.get(m)![j]!, 0) / MEMBERS.length;
        assert.ok(Math.abs(out[j]! - (previous[j]! + mean)) <= bound, `round ${n}, coordinate ${j}: ${out[j]} vs ${previous[j]! + mean}`);
      }

      // What valuation reads: one sum per group, equal to the plain sum of its members' updates and
      // never one company's update.
      const docs = (await p.store.list(groupSumPrefix(taskId, n, record.attempt))).map((e) => JSON.parse(e.value) as GroupSumShard);
      assert.equal(docs.length, groups.length * 3, 'one document per group and shard (3 shards)');
      for (const g of groups) {
        const sum = new Float32Array(N);
        let covered = 0;
        for (const d of docs.filter((x) => x.group === g.group)) {
          assert.deepEqual([...d.survivors].sort(), g.participants);
          const b = Buffer.from(d.values, 'base64');
          sum.set(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), d.offset);
          covered += b.byteLength / 4;
        }
        assert.equal(covered, N);
        let gap = 0;
        for (let j = 0; j < N; j++) gap = Math.max(gap, Math.abs(sum[j]! - g.participants.reduce((s, m) => s + updates.get(m)![j]!, 0)));
        assert.ok(gap <= 2 / fixedPointScale({ clipRange: CLIP, maxSummands: 2 }) + 1e-6, `group ${g.group} sum is off by ${gap}`);
        for (const m of g.participants) {
          let d = 0;
          for (let j = 0; j < N; j++) d = Math.max(d, Math.abs(sum[j]! - updates.get(m)![j]!));
          assert.ok(d > 0.001, `group ${g.group}'s sum is ${m}'s own update`);
        }
      }
      const individual = (await p.store.list(storeKey('aggregator', ''))).filter((e) => MEMBERS.some((m) => e.key.endsWith(`:${m}`)) && e.key.includes('group-sum'));
      assert.deepEqual(individual, [], 'no per-company key among what valuation reads');

      const scored = await client.score(taskId, n);
      assert.equal(scored.method, 'secure-group');
      assert.deepEqual(await p.store.list(groupSumPrefix(taskId, n, record.attempt)), [], 'group sums go once the round is scored');
      previous = out;
    }
    assert.ok(partners.size >= 2, `the harmful company was grouped with ${[...partners].join(', ')} only in ${n} rounds`);
    const cumulative = new Map((await client.contributions(taskId)).contributions.map((c) => [c.tenant, c.cumulativeValue]));
    for (const m of MEMBERS.filter((x) => x !== HARMFUL)) {
      assert.ok(cumulative.get(HARMFUL)! < cumulative.get(m)!, `the harmful company ends lowest: ${JSON.stringify([...cumulative])}`);
    }
  });
});
