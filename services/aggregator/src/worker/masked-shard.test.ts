import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SecAggClient, SecAggServer, MaskedSumAccumulator, UnmaskPool, quantizationErrorBound, type UnmaskPlan } from '@fedmm/secagg';
import { randomBytes } from 'node:crypto';
import type { PrivacySettings } from '../domain/types.js';
import { finishMaskedShard } from './masked-shard.js';

const L = 64;
const privacy = { mode: 'none', clipNorm: 1 } as PrivacySettings;

/** Runs one SecAgg+ instance in memory over `updates` and returns the survivors' masked sum and the plan. */
async function instance(updates: Map<string, Float32Array>): Promise<{ acc: MaskedSumAccumulator; plan: UnmaskPlan; inputs: [string, Uint32Array][] }> {
  const ids = [...updates.keys()].sort();
  const server = new SecAggServer({ roundId: 't/1/1', participants: ids, vectorLength: L, clipRange: 1, numShares: ids.length, threshold: Math.floor(ids.length / 2) + 1, roundSeed: randomBytes(32) });
  const clients = new Map(ids.map((c) => [c, new SecAggClient({ clientId: c })]));
  const setup = server.setupRequest();
  for (const c of ids) server.acceptSetup(clients.get(c)!.setup(setup));
  for (const q of server.closeSetup()) server.acceptShareKeys(await clients.get(q.clientId)!.shareKeys(q));
  const acc = new MaskedSumAccumulator(0, L);
  const inputs: [string, Uint32Array][] = [];
  for (const q of server.closeShareKeys()) {
    const m = clients.get(q.clientId)!.maskInput(q, updates.get(q.clientId)!);
    acc.add(q.clientId, m.maskedVector!);
    inputs.push([q.clientId, m.maskedVector!.slice()]);
    server.acceptMaskedInput({ stage: 'collect-masked', roundId: q.roundId, clientId: q.clientId });
  }
  for (const q of server.closeCollection()) server.acceptUnmask(clients.get(q.clientId)!.unmask(q));
  return { acc, plan: (await server.finish()).plan, inputs };
}

test('the shard of a round in groups is the same mean as one group over the same updates, and each group sum is its members\' sum', async () => {
  const updates = new Map(['a', 'b', 'c', 'd', 'e'].map((c, i) => [c, new Float32Array(L).map((_, j) => 0.05 * Math.sin(j * (i + 1)))]));
  const previous = new Float32Array(L).map((_, j) => j / L);
  const one = await finishMaskedShard({ groups: [await instance(updates)], previous, privacy });
  const split = [['a', 'c'], ['b', 'd', 'e']];
  const grouped = await finishMaskedShard({
    groups: await Promise.all(split.map(async (members, i) => ({ group: `g${i + 1}`, ...(await instance(new Map(members.map((m) => [m, updates.get(m)!])))) }))),
    previous,
    privacy,
  });
  assert.equal(grouped.contributors, 5);
  const bound = quantizationErrorBound({ clipRange: 1, maxSummands: 5 }, 5);
  for (let j = 0; j < L; j++) assert.ok(Math.abs(grouped.values[j]! - one.values[j]!) <= bound / 5 + 1e-6, `coordinate ${j}`);
  assert.deepEqual(grouped.groupSums.map((g) => [g.group, [...g.survivors]]), [['g1', ['a', 'c']], ['g2', ['b', 'd', 'e']]]);
  for (const [i, members] of split.entries()) {
    const sum = grouped.groupSums[i]!.sum;
    const err = quantizationErrorBound({ clipRange: 1, maxSummands: members.length }, members.length) + 1e-6;
    for (let j = 0; j < L; j++) {
      const plain = members.reduce((s, m) => s + updates.get(m)![j]!, 0);
      assert.ok(Math.abs(sum[j]! - plain) <= err, `group ${i + 1}, coordinate ${j}: ${sum[j]} vs ${plain}`);
    }
  }
});

test('unmasking over a pool of threads gives the same shard, word for word, as the worker thread alone', async () => {
  const updates = new Map(['a', 'b', 'c', 'd'].map((c, i) => [c, new Float32Array(L).map((_, j) => 0.03 * Math.cos(j * (i + 2)))]));
  const previous = new Float32Array(L).map((_, j) => -j / L);
  const inst = await instance(updates);
  const pool = new UnmaskPool({ threads: 2, minParallelWork: 1 });
  try {
    // The same masked inputs summed twice: each finish consumes its accumulator.
    const again = new MaskedSumAccumulator(0, L);
    for (const [c, v] of inst.inputs) again.add(c, v);
    const pooled = await finishMaskedShard({ groups: [inst], previous, privacy, pool });
    const alone = await finishMaskedShard({ groups: [{ acc: again, plan: inst.plan }], previous, privacy });
    assert.deepEqual([...pooled.values], [...alone.values]);
    assert.equal(pooled.contributors, 4);
  } finally {
    await pool.close();
  }
});
