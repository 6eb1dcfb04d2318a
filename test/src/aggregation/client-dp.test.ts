import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { aggregator as apb, privacy as ppb, task as tpb } from '@fedmm/proto';
import { KafkaBus } from '@fedmm/bus';
import { RedisStore } from '@fedmm/store';
import { waitFor } from '@fedmm/core';
import { createRpcClient, hostService, type HostedService, type RpcClient } from '@fedmm/service-kit';
import { registryModule } from '@fedmm/registry-service';
import { aggregatorModule, setAggregatorPeers } from '@fedmm/aggregator-service';
import { privacyModule, PrivacyClient } from '@fedmm/privacy-service';
import { kafkaBrokers, redisDbUrl, serviceEnv, tempDir, uniqueId } from '../support/env.js';
import { downloadTensors, uploadVersion } from '../support/models.js';
import { publishUpdateAsGateway } from '../support/updates.js';

const LAYOUT = [{ name: 'w', shape: [4000] }];
const SHARD = 1500;

describe('client-level DP at the aggregator: clipping, calibrated noise and accounting', { timeout: 180_000 }, () => {
  const dir = tempDir('client-dp');
  let bus: KafkaBus;
  let store: RedisStore;
  let registry: HostedService;
  let privacy: HostedService;
  let agg: HostedService;
  let client: RpcClient<typeof apb.AggregatorServiceService>;
  let privacyClient: PrivacyClient;
  let base: string;
  const zeros = new Float32Array(4000);

  before(async () => {
    bus = new KafkaBus({ brokers: kafkaBrokers, clientId: 'client-dp-test' });
    store = new RedisStore(redisDbUrl(12));
    for (const e of await store.list('fedmm:')) await store.delete(e.key);
    registry = await hostService(registryModule, serviceEnv(dir), { bus, store });
    privacy = await hostService(privacyModule, serviceEnv(dir), { bus, store });
    privacyClient = new PrivacyClient(privacy.address);
    setAggregatorPeers(() => ({ privacy: privacyClient }));
    agg = await hostService(aggregatorModule, serviceEnv(dir, {
      FEDMM_REGISTRY_ADDR: registry.address, FEDMM_SHARD_ELEMENTS: String(SHARD), FEDMM_AGGREGATOR_TICK_MS: '100',
      FEDMM_AGGREGATOR_LEASE_MS: '1500', FEDMM_AGGREGATOR_WORKER_GROUP: uniqueId('workers'),
    }), { bus, store });
    client = createRpcClient(apb.AggregatorServiceService, agg.address);
    base = await uploadVersion(registry.address, uniqueId('m'), new Map([['w', { shape: [4000], data: zeros }]]));
  });

  after(async () => {
    setAggregatorPeers(undefined);
    client.close();
    privacyClient.close();
    await agg.stop();
    await privacy.stop();
    await registry.stop();
    await bus.close();
    await store.close();
  });

  test('each update is clipped to C, the mean gets N(0, (sigma C / K)^2) noise, and every member is charged', async () => {
    const taskId = uniqueId('t');
    const sigma = 2;
    const clip = 1;
    await waitFor(async () => client.createTask({ task: tpb.Task.fromPartial({
      taskId, modelId: base.split('@')[0]!, baseVersionId: base, members: ['acme', 'bravo'], rounds: 1,
      strategy: { name: 'fedavg' }, roundDeadlineSeconds: 120,
      privacy: { mode: 'client', noiseMultiplier: sigma, clipNorm: clip, delta: 1e-5, accountant: 'rdp' },
    }) }).then(() => true, (e: Error) => { if (/not the leader/.test(e.message)) return false; throw e; }), { timeoutMs: 15_000, what: 'the coordinator lease' });
    await client.startRound({ taskId });
    // acme sends a constant update of norm 100 (clipped to 1: every coordinate becomes 1/sqrt(4000)); bravo sends zeros.
    const big = new Float32Array(4000).fill(100 / Math.sqrt(4000));
    for (const [c, u] of [['acme', big], ['bravo', new Float32Array(4000)]] as const) {
      const p = await publishUpdateAsGateway(bus, { task: taskId, round: 1, attempt: 1, client: c, numExamples: c === 'acme' ? 1000 : 1, roundLayout: LAYOUT, shardElements: SHARD, update: new Map([['w', u]]) });
      await client.reportUpdateReceived({ taskId, round: 1, tenant: c, updateSha256: p.sha256, numExamples: 1, numShards: p.shards, tensors: ['w'], bytes: 0, samplingRate: 0, noiseMultiplier: 0, steps: 0 });
    }
    await waitFor(async () => (await client.getRound({ taskId, number: 1 })).round!.state === tpb.RoundState.ROUND_STATE_PUBLISHED, { timeoutMs: 60_000, what: 'the round to publish', intervalMs: 200 });
    const w = (await downloadTensors(registry.address, (await client.getRound({ taskId, number: 1 })).round!.outputVersionId)).get('w')!;
    // Uniform weights under client DP: mean of the clipped updates is (1/sqrt(4000)) / 2 per coordinate.
    const expectedMean = 1 / Math.sqrt(4000) / 2;
    const expectedStd = (sigma * clip) / 2;
    let sum = 0;
    for (const x of w) sum += x;
    const mean = sum / w.length;
    let ss = 0;
    for (const x of w) ss += (x - mean) ** 2;
    const std = Math.sqrt(ss / (w.length - 1));
    assert.ok(Math.abs(std - expectedStd) < 0.06 * expectedStd, `noise std ${std} vs ${expectedStd}`);
    assert.ok(Math.abs(mean - expectedMean) < 4 * expectedStd / Math.sqrt(w.length), `mean ${mean} vs ${expectedMean}`);
    // Both members were charged the round's epsilon at the privacy service.
    const ledger = await privacyClient.raw.getLedger(ppb.GetLedgerRequest.fromPartial({ taskId }));
    assert.deepEqual(Object.keys(ledger.epsilonByTenant).sort(), ['acme', 'bravo']);
    for (const eps of Object.values(ledger.epsilonByTenant)) assert.ok(eps > 0 && Number.isFinite(eps));
  });
});
