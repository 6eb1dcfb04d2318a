import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { aggregator as apb, task as tpb } from '@fedmm/proto';
import { KafkaBus } from '@fedmm/bus';
import { RedisStore } from '@fedmm/store';
import { waitFor } from '@fedmm/core';
import { createRpcClient, hostService, type HostedService, type RpcClient } from '@fedmm/service-kit';
import { registryModule } from '@fedmm/registry-service';
import { aggregatorModule } from '@fedmm/aggregator-service';
import { kafkaBrokers, redisDbUrl, serviceEnv, tempDir, uniqueId } from '../support/env.js';
import { downloadTensors, uploadVersion } from '../support/models.js';
import { publishUpdateAsGateway } from '../support/updates.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const LAYOUT = [
  { name: 'a', shape: [40, 8] },
  { name: 'b', shape: [300] },
];
const SHARD = 48;

function values(seed: number, n: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32 - 0.5;
  });
}

const update = (seed: number): Map<string, Float32Array> => new Map(LAYOUT.map((t, i) => [t.name, values(seed * 10 + i, t.shape.reduce((a, b) => a * b, 1))]));

describe('failover on real processes, Kafka and Redis', { timeout: 240_000 }, () => {
  const dir = tempDir('failover');
  const db = 6;
  const group = uniqueId('workers');
  let bus: KafkaBus;
  let store: RedisStore;
  let registry: HostedService;
  let agg: HostedService;
  let client: RpcClient<typeof apb.AggregatorServiceService>;
  let base: string;
  const workers: { proc: ChildProcess; log: string[] }[] = [];
  const prev = update(1);
  const aggEnv = (): NodeJS.ProcessEnv => serviceEnv(dir, {
    FEDMM_REGISTRY_ADDR: registry.address, FEDMM_SHARD_ELEMENTS: String(SHARD), FEDMM_AGGREGATOR_WORKERS: '0',
    FEDMM_AGGREGATOR_LEASE_MS: '1500', FEDMM_AGGREGATOR_TICK_MS: '100', FEDMM_AGGREGATOR_WORKER_GROUP: group,
  });

  const startWorker = (): { proc: ChildProcess; log: string[] } => {
    const log: string[] = [];
    const proc = spawn(process.execPath, [join(root, 'bin/fedmm.js'), 'serve', 'aggregator-worker'], {
      env: {
        ...aggEnv(), FEDMM_BUS: 'kafka', FEDMM_KAFKA_BROKERS: kafkaBrokers.join(','), FEDMM_STORE: 'redis',
        FEDMM_REDIS_URL: redisDbUrl(db), FEDMM_LOG_LEVEL: 'debug',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stderr.on('data', (b: Buffer) => log.push(...b.toString().split('\n')));
    proc.stdout.on('data', (b: Buffer) => log.push(...b.toString().split('\n')));
    const w = { proc, log };
    workers.push(w);
    return w;
  };

  before(async () => {
    bus = new KafkaBus({ brokers: kafkaBrokers, clientId: 'failover-test' });
    store = new RedisStore(redisDbUrl(db));
    // Rounds left by an interrupted earlier run would be finished by these workers too.
    for (const e of await store.list('fedmm:')) await store.delete(e.key);
    registry = await hostService(registryModule, serviceEnv(dir), { bus, store });
    agg = await hostService(aggregatorModule, aggEnv(), { bus, store });
    client = createRpcClient(apb.AggregatorServiceService, agg.address);
    base = await uploadVersion(registry.address, uniqueId('m'), new Map(LAYOUT.map((t) => [t.name, { shape: t.shape, data: prev.get(t.name)! }])));
  });

  after(async () => {
    for (const w of workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    client.close();
    await agg.stop();
    await registry.stop();
    await bus.close();
    await store.close();
  });

  const createTask = async (c: RpcClient<typeof apb.AggregatorServiceService>, taskId: string): Promise<void> => {
    await waitFor(async () => c.createTask({ task: tpb.Task.fromPartial({ taskId, modelId: base.split('@')[0]!, baseVersionId: base, members: ['acme', 'bravo', 'corp'], rounds: 1, strategy: { name: 'fedavg' }, roundDeadlineSeconds: 120 }) }).then(() => true, (e: Error) => { if (/not the leader/.test(e.message)) return false; throw e; }), { timeoutMs: 15_000, what: 'the coordinator lease' });
  };

  const expected = (ups: { u: Map<string, Float32Array>; n: number }[]): Map<string, Float64Array> => {
    const w = ups.reduce((s, x) => s + x.n, 0);
    return new Map([...prev].map(([name, p]) => [name, Float64Array.from(p, (x, i) => x + ups.reduce((s, up) => s + up.n * up.u.get(name)![i]!, 0) / w)]));
  };

  const assertClose = (got: Map<string, Float32Array>, want: Map<string, Float64Array>): void => {
    for (const [name, w] of want) {
      const g = got.get(name)!;
      for (let i = 0; i < w.length; i++) assert.ok(Math.abs(g[i]! - w[i]!) <= 1e-6 * (1 + Math.abs(w[i]!)), `${name}[${i}] ${g[i]} vs ${w[i]}`);
    }
  };

  test('a worker killed mid-round is replaced by another that replays the round from Kafka', async () => {
    const a = startWorker();
    const b = startWorker();
    // Both members own partitions once the group has rebalanced.
    await waitFor(() => a.log.some((l) => l.includes('worker owns partitions')) && b.log.some((l) => l.includes('worker owns partitions')) && workers.every((w) => w.log.filter((l) => l.includes('worker owns partitions')).length >= 1), { timeoutMs: 60_000, what: 'two workers in the group', intervalMs: 200 });
    await new Promise((r) => setTimeout(r, 3000));
    const taskId = uniqueId('t');
    await createTask(client, taskId);
    await client.startRound({ taskId });
    const ups = [{ c: 'acme', n: 30, u: update(2) }, { c: 'bravo', n: 20, u: update(3) }, { c: 'corp', n: 10, u: update(4) }];
    const reports = [];
    for (const up of ups) {
      const p = await publishUpdateAsGateway(bus, { task: taskId, round: 1, attempt: 1, client: up.c, numExamples: up.n, roundLayout: LAYOUT, shardElements: SHARD, update: up.u });
      reports.push({ taskId, round: 1, tenant: up.c, updateSha256: p.sha256, numExamples: up.n, numShards: p.shards, tensors: [...up.u.keys()], bytes: 0, samplingRate: 0, noiseMultiplier: 0, steps: 0 });
    }
    // Let the workers fold what they own, then kill one without warning.
    await new Promise((r) => setTimeout(r, 2000));
    a.proc.kill('SIGKILL');
    for (const r of reports) await client.reportUpdateReceived(r);
    await waitFor(async () => (await client.getRound({ taskId, number: 1 })).round!.state === tpb.RoundState.ROUND_STATE_PUBLISHED, { timeoutMs: 120_000, what: 'the round to publish after the kill', intervalMs: 300 });
    const round = (await client.getRound({ taskId, number: 1 })).round!;
    assertClose(await downloadTensors(registry.address, round.outputVersionId), expected(ups));
    b.proc.kill('SIGTERM');
  });

  test('a coordinator restarted mid-round continues the round where it was', async () => {
    startWorker();
    const taskId = uniqueId('t');
    await createTask(client, taskId);
    await client.startRound({ taskId });
    const ups = [{ c: 'acme', n: 5, u: update(7) }, { c: 'bravo', n: 15, u: update(8) }, { c: 'corp', n: 25, u: update(9) }];
    const first = ups[0]!;
    const p0 = await publishUpdateAsGateway(bus, { task: taskId, round: 1, attempt: 1, client: first.c, numExamples: first.n, roundLayout: LAYOUT, shardElements: SHARD, update: first.u });
    await client.reportUpdateReceived({ taskId, round: 1, tenant: first.c, updateSha256: p0.sha256, numExamples: first.n, numShards: p0.shards, tensors: ['a', 'b'], bytes: 0, samplingRate: 0, noiseMultiplier: 0, steps: 0 });
    // The coordinator goes away and a new one takes over from the store.
    client.close();
    await agg.stop();
    agg = await hostService(aggregatorModule, aggEnv(), { bus, store });
    client = createRpcClient(apb.AggregatorServiceService, agg.address);
    const round = await waitFor(async () => (await client.getRound({ taskId, number: 1 }).catch(() => undefined))?.round, { timeoutMs: 10_000, what: 'the round from the new coordinator' });
    assert.deepEqual(round.received, ['acme']);
    for (const up of ups.slice(1)) {
      const p = await publishUpdateAsGateway(bus, { task: taskId, round: 1, attempt: 1, client: up.c, numExamples: up.n, roundLayout: LAYOUT, shardElements: SHARD, update: up.u });
      await waitFor(async () => client.reportUpdateReceived({ taskId, round: 1, tenant: up.c, updateSha256: p.sha256, numExamples: up.n, numShards: p.shards, tensors: ['a', 'b'], bytes: 0, samplingRate: 0, noiseMultiplier: 0, steps: 0 }).then(() => true, (e: Error) => { if (/not the leader/.test(e.message)) return false; throw e; }), { timeoutMs: 15_000, what: 'the new leader' });
    }
    await waitFor(async () => (await client.getRound({ taskId, number: 1 })).round!.state === tpb.RoundState.ROUND_STATE_PUBLISHED, { timeoutMs: 90_000, what: 'the round to publish', intervalMs: 300 });
    const done = (await client.getRound({ taskId, number: 1 })).round!;
    for (const w of workers) process.stderr.write(w.log.filter((l) => /warn|error|owns|finished/.test(l)).map((l) => `WORKER ${w.proc.pid}: ${l.slice(0, 300)}\n`).join(''));
    assertClose(await downloadTensors(registry.address, done.outputVersionId), expected(ups));
  });
});
