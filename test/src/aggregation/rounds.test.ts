import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { aggregator as apb, task as tpb } from '@fedmm/proto';
import { KafkaBus } from '@fedmm/bus';
import { RedisStore } from '@fedmm/store';
import { createRpcClient, hostService, type HostedService, type RpcClient } from '@fedmm/service-kit';
import { registryModule } from '@fedmm/registry-service';
import { aggregatorModule, distancesPrefix, selectionKey, shardResultPrefix } from '@fedmm/aggregator-service';
import { kafkaBrokers, redisDbUrl, serviceEnv, tempDir, uniqueId } from '../support/env.js';
import { downloadTensors, uploadVersion, type NamedArrays } from '../support/models.js';
import { publishUpdateAsGateway } from '../support/updates.js';
import { waitFor } from '@fedmm/core';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { rng as uniform } from '@fedmm/aggregation/testing';

// Three tensors over four shards of 64 elements; "a" is an image adapter some clients lack.
const LAYOUT = [
  { name: 'a', shape: [10, 8], modality: 'image' },
  { name: 'b', shape: [5, 20], modality: 'text' },
  { name: 'c', shape: [30] },
];
const SHARD = 64;

/** Uniform in [-0.5, 0.5), seeded. */
function rng(seed: number): () => number {
  const r = uniform(seed);
  return () => r() - 0.5;
}

function randomTensors(seed: number, names = LAYOUT.map((t) => t.name)): Map<string, Float32Array> {
  const r = rng(seed);
  const out = new Map<string, Float32Array>();
  for (const t of LAYOUT) if (names.includes(t.name)) out.set(t.name, Float32Array.from({ length: t.shape.reduce((a, b) => a * b, 1) }, r));
  return out;
}

/** FedAvg in float64: each tensor averaged over the clients that sent it, weighted by examples. */
function fedavgReference(prev: Map<string, Float32Array>, updates: { update: Map<string, Float32Array>; n: number }[]): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const [name, p] of prev) {
    const holders = updates.filter((u) => u.update.has(name));
    const w = holders.reduce((s, u) => s + u.n, 0);
    out.set(name, Float64Array.from(p, (x, i) => x + (w === 0 ? 0 : holders.reduce((s, u) => s + u.n * u.update.get(name)![i]!, 0) / w)));
  }
  return out;
}

describe('rounds end to end on real Kafka and Redis', { timeout: 240_000 }, () => {
  let bus: KafkaBus;
  let store: RedisStore;
  let registry: HostedService;
  let agg: HostedService;
  let client: RpcClient<typeof apb.AggregatorServiceService>;
  let base: string;
  const dir = tempDir('rounds');
  const redisDb = 5;
  const group = uniqueId('workers');
  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => serviceEnv(dir, {
    FEDMM_SHARD_ELEMENTS: String(SHARD), FEDMM_AGGREGATOR_LEASE_MS: '1500', FEDMM_AGGREGATOR_TICK_MS: '100',
    FEDMM_AGGREGATOR_WORKER_GROUP: group, ...extra,
  });
  const prevTensors = randomTensors(1);

  before(async () => {
    bus = new KafkaBus({ brokers: kafkaBrokers, clientId: 'rounds-test', sessionTimeoutMs: 6000, heartbeatIntervalMs: 500 });
    store = new RedisStore(redisDbUrl(redisDb));
    for (const e of await store.list('fedmm:')) await store.delete(e.key);
    registry = await hostService(registryModule, env(), { bus, store });
    agg = await hostService(aggregatorModule, env({ FEDMM_REGISTRY_ADDR: registry.address }), { bus, store });
    client = createRpcClient(apb.AggregatorServiceService, agg.address);
    const arrays: NamedArrays = new Map(LAYOUT.map((t) => [t.name, { shape: t.shape, data: prevTensors.get(t.name)!, ...(t.modality ? { modality: t.modality } : {}) }]));
    base = await uploadVersion(registry.address, uniqueId('m'), arrays);
    await waitFor(async () => (await client.listTasks({}).then(() => true).catch(() => false)), { timeoutMs: 10_000, what: 'the coordinator' });
  });

  after(async () => {
    client.close();
    await agg.stop();
    await registry.stop();
    await bus.close();
    await store.close();
  });

  const createTask = async (taskId: string, opts: Partial<tpb.Task> = {}): Promise<void> => {
    const modelId = base.split('@')[0]!;
    // The coordinator needs a moment to take its lease after start.
    await waitFor(async () => client.createTask({ task: tpb.Task.fromPartial({ taskId, modelId, baseVersionId: base, members: ['acme', 'bravo', 'corp'], rounds: 2, strategy: { name: 'fedavg' }, roundDeadlineSeconds: 60, ...opts }) }).then(() => true, (e: Error) => { if (/not the leader/.test(e.message)) return false; throw e; }), { timeoutMs: 15_000, what: 'the coordinator lease' });
  };

  const roundOf = async (taskId: string, n: number): Promise<tpb.Round> => (await client.getRound({ taskId, number: n })).round!;

  /**
   * After publication the store keeps no shard values of the round attempt: every key of the task
   * is small (the values went to the registry; only server-optimizer moments per shard stay, needed
   * by the next round), and the attempt's done-markers and Krum documents go right after. The
   * registry dropped its staged shards once it assembled the version.
   */
  const assertNoAttemptValues = async (taskId: string, n: number, attempt: number): Promise<void> => {
    const ofTask = async (): Promise<{ key: string; value: string }[]> => (await store.list('fedmm:aggregator:')).filter((e) => e.key.split(':').includes(taskId));
    for (const e of await ofTask()) {
      if (e.key.split(':').includes('optstate')) continue;
      assert.ok(!/"values"/.test(e.value) && e.value.length < 4096, `${e.key} holds ${e.value.length} bytes: no shard values stay in the store`);
    }
    const ofAttempt = async (): Promise<string[]> => (await ofTask()).map((e) => e.key).filter((k) => {
      const parts = k.split(':');
      const at = parts.indexOf(taskId);
      return parts[at + 1] === String(n) && parts[at + 2] === String(attempt);
    });
    await waitFor(async () => (await ofAttempt()).length === 0, { timeoutMs: 10_000, what: `the keys of round ${n} attempt ${attempt} to be deleted`, intervalMs: 100 }).catch(async (e: unknown) => {
      assert.fail(`${(e as Error).message}: ${(await ofAttempt()).join(', ')}`);
    });
    assert.deepEqual(await store.list(shardResultPrefix(taskId, n, attempt)), [], 'no done-markers are left');
    assert.deepEqual(await store.list(distancesPrefix(taskId, n, attempt)), [], 'no Krum distances are left');
    assert.equal(await store.get(selectionKey(taskId, n, attempt)), undefined, 'no Krum selection is left');
    const staged = join(dir, 'blobs', 'rounds', taskId);
    assert.deepEqual(existsSync(staged) ? readdirSync(staged, { recursive: true }) : [], [], 'the registry keeps no staged shards of the round');
  };

  test('a round aggregates per-tensor FedAvg across shards, counts duplicates once, and opens the next round', async () => {
    const taskId = uniqueId('t');
    await createTask(taskId);
    const r1 = (await client.startRound({ taskId })).round!;
    assert.equal(r1.state, tpb.RoundState.ROUND_STATE_OPEN);
    assert.deepEqual(r1.selected, ['acme', 'bravo', 'corp']);
    const ups = [
      { client: 'acme', n: 100, update: randomTensors(11) },
      { client: 'bravo', n: 50, update: randomTensors(12, ['b', 'c']) },
      { client: 'corp', n: 25, update: randomTensors(13, ['a', 'c']) },
    ];
    for (const u of ups) {
      const p = await publishUpdateAsGateway(bus, { task: taskId, round: 1, attempt: 1, client: u.client, numExamples: u.n, roundLayout: LAYOUT, shardElements: SHARD, update: u.update, duplicate: u.client === 'bravo' });
      await client.reportUpdateReceived({ taskId, round: 1, tenant: u.client, updateSha256: p.sha256, numExamples: u.n, numShards: p.shards, tensors: [...u.update.keys()], bytes: 0, samplingRate: 0, noiseMultiplier: 0, steps: 0 });
    }
    await waitFor(async () => (await roundOf(taskId, 1)).state === tpb.RoundState.ROUND_STATE_PUBLISHED, { timeoutMs: 60_000, what: 'round 1 to publish', intervalMs: 200 });
    const published = await roundOf(taskId, 1);
    const got = await downloadTensors(registry.address, published.outputVersionId);
    const want = fedavgReference(prevTensors, ups.map((u) => ({ update: u.update, n: u.n })));
    for (const [name, w] of want) {
      const g = got.get(name)!;
      assert.equal(g.length, w.length);
      for (let i = 0; i < w.length; i++) assert.ok(Math.abs(g[i]! - w[i]!) <= 1e-6 * (1 + Math.abs(w[i]!)), `${name}[${i}]: ${g[i]} vs ${w[i]}`);
    }
    await assertNoAttemptValues(taskId, 1, 1);
    // The task moves on by itself.
    await waitFor(async () => (await client.getTask({ taskId })).task!.currentRound === 2, { timeoutMs: 10_000, what: 'round 2 to open' });
    const r2 = await roundOf(taskId, 2);
    assert.equal(r2.inputVersionId, published.outputVersionId);
    await client.cancelRound({ taskId, number: 2, reason: 'test done' });
  });

  test('a round seals at the deadline with the minimum, or fails cleanly and retries with a new attempt', async () => {
    const taskId = uniqueId('t');
    await createTask(taskId, { roundDeadlineSeconds: 2, selection: { fraction: 1, minClients: 2, maxClients: 0 }, rounds: 1 });
    await client.startRound({ taskId });
    // Only one client answers: below the minimum of two.
    const u = randomTensors(21);
    const p = await publishUpdateAsGateway(bus, { task: taskId, round: 1, attempt: 1, client: 'acme', numExamples: 10, roundLayout: LAYOUT, shardElements: SHARD, update: u });
    await client.reportUpdateReceived({ taskId, round: 1, tenant: 'acme', updateSha256: p.sha256, numExamples: 10, numShards: p.shards, tensors: [...u.keys()], bytes: 0, samplingRate: 0, noiseMultiplier: 0, steps: 0 });
    await waitFor(async () => (await roundOf(taskId, 1)).attempt === 2, { timeoutMs: 20_000, what: 'the retry of round 1', intervalMs: 200 });
    const retry = await roundOf(taskId, 1);
    assert.equal(retry.state, tpb.RoundState.ROUND_STATE_OPEN);
    // Attempt 2: two of three answer, the deadline seals it and it publishes.
    const both = [{ c: 'acme', s: 31 }, { c: 'corp', s: 32 }];
    for (const b of both) {
      const up = randomTensors(b.s);
      const q = await publishUpdateAsGateway(bus, { task: taskId, round: 1, attempt: 2, client: b.c, numExamples: 10, roundLayout: LAYOUT, shardElements: SHARD, update: up });
      await client.reportUpdateReceived({ taskId, round: 1, tenant: b.c, updateSha256: q.sha256, numExamples: 10, numShards: q.shards, tensors: [...up.keys()], bytes: 0, samplingRate: 0, noiseMultiplier: 0, steps: 0 });
    }
    await waitFor(async () => (await roundOf(taskId, 1)).state === tpb.RoundState.ROUND_STATE_PUBLISHED, { timeoutMs: 30_000, what: 'attempt 2 to publish at its deadline', intervalMs: 200 });
    const done = await roundOf(taskId, 1);
    assert.deepEqual([...done.received].sort(), ['acme', 'corp']);
    assert.deepEqual(done.dropped, ['bravo']);
    assert.equal((await client.getTask({ taskId })).task!.state, 'completed');
  });

  test('every strategy runs across shards; robust ones resist a Byzantine client that FedAvg follows', async () => {
    const members = ['h1', 'h2', 'h3', 'h4', 'evil'];
    const honest = (seed: number): Map<string, Float32Array> => {
      const r = rng(seed);
      return new Map(LAYOUT.map((t) => [t.name, Float32Array.from({ length: t.shape.reduce((a, b) => a * b, 1) }, () => 0.1 + 0.01 * r())]));
    };
    const evil = new Map(LAYOUT.map((t) => [t.name, new Float32Array(t.shape.reduce((a, b) => a * b, 1)).fill(-100)]));
    const cases: { name: string; strategy: Partial<tpb.StrategyConfig>; robust: boolean }[] = [
      { name: 'fedavg', strategy: { name: 'fedavg' }, robust: false },
      { name: 'fedavg with update-norm clipping', strategy: { name: 'fedavg', clipNorm: 1 }, robust: true },
      { name: 'median', strategy: { name: 'median' }, robust: true },
      { name: 'trimmed-mean', strategy: { name: 'trimmed-mean', params: { beta: 0.2 } }, robust: true },
      { name: 'krum', strategy: { name: 'krum', params: { byzantine: 1 } }, robust: true },
      { name: 'multi-krum', strategy: { name: 'multi-krum', params: { byzantine: 1, keep: 3 } }, robust: true },
      { name: 'fedadam', strategy: { name: 'fedadam', params: { eta: 0.1 } }, robust: false },
    ];
    for (const c of cases) {
      const taskId = uniqueId('t');
      await createTask(taskId, { members, rounds: 1, strategy: tpb.StrategyConfig.fromPartial(c.strategy) });
      await client.startRound({ taskId });
      for (const [i, m] of members.entries()) {
        const update = m === 'evil' ? evil : honest(100 + i);
        const p = await publishUpdateAsGateway(bus, { task: taskId, round: 1, attempt: 1, client: m, numExamples: 10, roundLayout: LAYOUT, shardElements: SHARD, update });
        await client.reportUpdateReceived({ taskId, round: 1, tenant: m, updateSha256: p.sha256, numExamples: 10, numShards: p.shards, tensors: [...update.keys()], bytes: 0, samplingRate: 0, noiseMultiplier: 0, steps: 0 });
      }
      await waitFor(async () => (await roundOf(taskId, 1)).state === tpb.RoundState.ROUND_STATE_PUBLISHED, { timeoutMs: 60_000, what: `${c.name} to publish`, intervalMs: 200 });
      await assertNoAttemptValues(taskId, 1, 1);
      const got = await downloadTensors(registry.address, (await roundOf(taskId, 1)).outputVersionId);
      let worst = 0;
      for (const [name, prev] of prevTensors) {
        const g = got.get(name)!;
        for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i]! - prev[i]! - 0.1));
      }
      if (c.robust) assert.ok(worst < 0.6, `${c.name}: the Byzantine client moved the result by ${worst}`);
      else if (c.name === 'fedavg') assert.ok(worst > 15, `fedavg should follow the Byzantine client, moved only ${worst}`);
      else assert.ok(Number.isFinite(worst), `${c.name} produced non-finite values`);
    }
  });

  test('only members that accepted the current terms are selected; changed terms need every acceptance again', async () => {
    const taskId = uniqueId('t');
    const terms = JSON.stringify({ rewardRule: 'proportional', dataUse: 'fine-tuning only', version: 1 });
    await createTask(taskId, { rounds: 3, termsJson: terms, selection: { fraction: 1, minClients: 2, maxClients: 0 } });
    const task = (await client.getTask({ taskId })).task!;
    assert.equal(task.termsDigest.length, 64);
    await assert.rejects(client.startRound({ taskId }), (e: Error & { code?: string }) => e.code === 'FAILED_PRECONDITION' && /accept the task terms/.test(e.message));
    const accept = (tenant: string, digest: string): Promise<unknown> => client.recordTermsAcceptance({ taskId, tenant, termsDigest: digest, signature: Buffer.from('sig'), certificatePem: '' });
    await assert.rejects(accept('acme', 'f'.repeat(64)), (e: Error & { code?: string }) => e.code === 'FAILED_PRECONDITION');
    await assert.rejects(accept('mallory', task.termsDigest), (e: Error & { code?: string }) => e.code === 'PERMISSION_DENIED');
    await accept('acme', task.termsDigest);
    await accept('corp', task.termsDigest);
    const r1 = (await client.startRound({ taskId })).round!;
    assert.deepEqual(r1.selected, ['acme', 'corp']);
    await client.cancelRound({ taskId, number: 1, reason: 'terms change' });
    const changed = (await client.updateTerms({ taskId, termsJson: JSON.stringify({ rewardRule: 'equal', version: 2 }) })).task!;
    assert.notEqual(changed.termsDigest, task.termsDigest);
    await assert.rejects(client.startRound({ taskId }), /accept the task terms/);
    await accept('acme', changed.termsDigest);
    await accept('bravo', changed.termsDigest);
    const r2 = (await client.startRound({ taskId })).round!;
    assert.deepEqual(r2.selected, ['acme', 'bravo']);
    await client.cancelRound({ taskId, number: r2.number, reason: 'test done' });
  });

  test('rejections: unknown task, tenant not selected, duplicate upload', async () => {
    await assert.rejects(client.getUploadPolicy({ taskId: 'no-such-task', round: 1, tenant: 'acme' }), /NOT_FOUND|does not exist/);
    const taskId = uniqueId('t');
    await createTask(taskId, { selection: { fraction: 0.34, minClients: 1, maxClients: 1 }, rounds: 1 });
    const r = (await client.startRound({ taskId })).round!;
    assert.equal(r.selected.length, 1);
    const outsider = ['acme', 'bravo', 'corp'].find((m) => !r.selected.includes(m))!;
    await assert.rejects(client.getUploadPolicy({ taskId, round: 1, tenant: outsider }), (e: Error & { code?: string }) => /not selected/.test(e.message) && e.code === 'PERMISSION_DENIED');
    await assert.rejects(client.getUploadPolicy({ taskId, round: 2, tenant: r.selected[0]! }), (e: Error & { code?: string }) => e.code === 'FAILED_PRECONDITION');
    await client.cancelRound({ taskId, number: 1, reason: 'test done' });
  });
});
