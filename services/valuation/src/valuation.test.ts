import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { groupSumKey, groupSumPrefix, roundKey, taskKey, type GroupSumShard, type RoundRecord, type SecAggRoundState, type TaskRecord } from '@fedmm/aggregator-service';
import { KafkaBus } from '@fedmm/bus';
import { createLogger } from '@fedmm/core';
import { audit as apb, registry as rpb } from '@fedmm/proto';
import { registryModule } from '@fedmm/registry-service';
import { createRpcClient, hostService, type HostedService } from '@fedmm/service-kit';
import { RedisStore } from '@fedmm/store';
import { crc32c, createLayout, encodeUpdateChunk, encodeVerdict, makeTensor, serializeSafetensors, sha256Hex, type Tensor } from '@fedmm/tensor';
import { ValuationClient } from './client.js';
import { createValuationModule } from './main.js';
import { UpdateFiles } from './updates/update-files.js';

const redisUrl = process.env['FEDMM_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const brokers = process.env['FEDMM_KAFKA_BROKERS'] ?? '127.0.0.1:9092';
const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const topic = `fedmm.updates.valuation-test-${run}`;
const log = createLogger({}, 'warn');

const TENSORS = [
  { name: 'adapter.b', dtype: 'F32' as const, shape: [3] },
  { name: 'adapter.w', dtype: 'F32' as const, shape: [2, 3] },
];
const layout = createLayout(TENSORS);

let dir: string;
let store: RedisStore;
let bus: KafkaBus;
let registry: HostedService;
let valuation: HostedService;
let files: UpdateFiles;
let client: ValuationClient;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedmm-valuation-'));
  store = new RedisStore(redisUrl);
  bus = new KafkaBus({ brokers: brokers.split(','), clientId: 'valuation-test', sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, logger: log });
  await bus.ensureTopic(topic, { partitions: 2, maxMessageBytes: 2 * 1024 * 1024 });
  const env = { FEDMM_GRPC_PORT: '0', FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_DATA_DIR: dir, FEDMM_KAFKA_BROKERS: brokers, FEDMM_REDIS_URL: redisUrl };
  registry = await hostService(registryModule, { ...env, FEDMM_REGISTRY_BLOB_DIR: join(dir, 'blobs') }, { bus, store, log });
  valuation = await hostService(
    createValuationModule({ updateFiles: (d) => (files = new UpdateFiles(d)) }),
    { ...env, FEDMM_REGISTRY_ADDR: `127.0.0.1:${registry.port}`, FEDMM_VALUATION_UPDATES_TOPIC: topic, FEDMM_VALUATION_GROUP: `valuation-test-${run}`, FEDMM_VALUATION_UPDATE_WAIT_MS: '60000' },
    { bus, store, log },
  );
  client = new ValuationClient(`127.0.0.1:${valuation.port}`);
});

after(async () => {
  client?.close();
  await valuation?.stop();
  await registry?.stop();
  await bus?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

const flat = (xs: number[]): Float32Array => Float32Array.from(xs);
const tensorsOf = (v: Float32Array): Map<string, { shape: number[]; data: Float32Array }> =>
  new Map(layout.entries.map((e) => [e.name, { shape: [...e.shape], data: v.slice(e.offset, e.offset + e.length) }]));

/** Publishes one client's update as the gateway does: its chunk, then the verdict. */
async function publishUpdate(task: string, round: number, clientId: string, values: Float32Array, accept = true): Promise<string> {
  const sha = createHash('sha256').update(new Uint8Array(values.buffer)).update(clientId).digest('hex');
  const chunk = encodeUpdateChunk({
    task, round, client: clientId, shard: 0, seq: 0, seqCount: 1, layoutFingerprint: layout.fingerprint, dtype: 'F32', elementOffset: 0, values, numExamples: 10, updateSha256: sha,
  });
  const verdict = encodeVerdict({ task, round, attempt: 1, client: clientId, shard: 0, updateSha256: sha, accept, numExamples: 10, norm: 1, seqCount: 1 });
  await bus.publish(topic, [
    { key: chunk.key, value: chunk.value, headers: { ...chunk.headers } },
    { key: verdict.key, value: verdict.value, headers: verdict.headers },
  ]);
  return sha;
}

/** Uploads an adapter version to the registry as the aggregator publishes one. */
async function uploadAdapter(modelId: string, parentVersionId: string, task: string, round: number, values: Float32Array): Promise<string> {
  const tensors = new Map<string, Tensor>([...tensorsOf(values)].map(([n, t]) => [n, makeTensor('F32', t.shape, t.data)]));
  const bytes = serializeSafetensors(tensors, { 'fedmm.task': task, 'fedmm.round': String(round) });
  const c = createRpcClient(rpb.RegistryServiceService, `127.0.0.1:${registry.port}`);
  try {
    const res = await new Promise<rpb.UploadVersionResponse>((resolve, reject) => {
      const call = c.uploadVersion({ deadlineMs: 30_000 }, (err, r) => (err ? reject(err) : resolve(r!)));
      call.write({ payload: { $case: 'header', value: rpb.UploadVersionHeader.fromPartial({
        modelId, kind: rpb.ModelKind.MODEL_KIND_ADAPTER, parentVersionId,
        lineage: { taskId: task, round, contributingClients: [], strategy: 'fedavg', parentVersionId },
        artifactSha256: sha256Hex(bytes), artifactSize: bytes.byteLength,
      }) } });
      call.write({ payload: { $case: 'chunk', value: { offset: 0, data: Buffer.from(bytes), crc32c: crc32c(bytes) } } });
      call.end();
    });
    return res.version!.versionId;
  } finally {
    c.close();
  }
}

interface Setup {
  task: string;
  modelId: string;
  outputVersionId: string;
  members: string[];
}

/** Writes the task and a published round into the store as the aggregator does, with versions in the registry. */
async function publishedRound(opts: { secure: boolean; updates: Record<string, Float32Array>; rejected?: Record<string, Float32Array> }): Promise<Setup> {
  const task = `val-${opts.secure ? 'sec' : 'plain'}-${run}`;
  const modelId = `m-${opts.secure ? 's' : 'p'}-${run}`.toLowerCase();
  const reg = createRpcClient(rpb.RegistryServiceService, `127.0.0.1:${registry.port}`);
  await reg.createModel({ modelId, description: 'valuation test', configJson: '' }).finally(() => reg.close());
  const members = Object.keys(opts.updates).sort();
  const previous = flat([0.5, -0.5, 0.25, 1, 0, -1, 0.5, 0.5, 0.5]);
  const input = await uploadAdapter(modelId, '', task, 0, previous);
  const mean = new Float32Array(layout.totalElements);
  for (const u of Object.values(opts.updates)) for (let i = 0; i < mean.length; i++) mean[i]! += u[i]! / members.length;
  const output = await uploadAdapter(modelId, input, task, 1, previous.map((p, i) => p + mean[i]!));
  const terms = { accessTiers: { tiers: [{ name: 'full', minShare: 0.1, versionDelay: 0 }, { name: 'free-rider', minShare: 0, versionDelay: 2 }] } };
  const taskRecord: Partial<TaskRecord> = {
    taskId: task, modelId, baseVersionId: '', members, rounds: 3, termsJson: JSON.stringify(terms), valuationMethod: '', clientConfig: {}, state: 'running', currentRound: 1,
    privacy: { mode: 'none', noiseMultiplier: 0, targetEpsilon: 0, delta: 0, clipNorm: 0, accountant: 'rdp', secureAggregation: opts.secure, secaggThreshold: 2, secaggNumShares: 3 },
  };
  await store.put(taskKey(task), JSON.stringify(taskRecord));
  const received = [];
  for (const [c, v] of Object.entries(opts.rejected ?? {})) await publishUpdate(task, 1, c, v, false);
  for (const [c, v] of Object.entries(opts.updates)) {
    const sha = await publishUpdate(task, 1, c, v);
    received.push({ tenant: c, sha256: sha, numExamples: 10, bytes: v.byteLength, tensors: TENSORS.map((t) => t.name), numShards: 1, samplingRate: 1, noiseMultiplier: 0, steps: 1, at: Date.now() });
  }
  const round: Partial<RoundRecord> = {
    taskId: task, number: 1, attempt: 1, state: 'published', selected: members, received, dropped: [], inputVersionId: input, outputVersionId: output,
    layout: { tensors: TENSORS.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })), fingerprint: layout.fingerprint, totalElements: layout.totalElements },
  };
  await store.put(roundKey(task, 1), JSON.stringify(round));
  return { task, modelId, outputVersionId: output, members };
}

async function download(versionId: string, tenant: string): Promise<'ok' | string> {
  const c = createRpcClient(rpb.RegistryServiceService, `127.0.0.1:${registry.port}`);
  try {
    return await new Promise((resolve) => {
      const s = c.downloadVersion({ versionId, offset: 0, tenant, chunkSize: 0 });
      s.on('data', () => undefined);
      s.on('error', (e: { code?: number }) => resolve(e.code === 7 ? 'PERMISSION_DENIED' : `code ${e.code}`));
      s.on('end', () => resolve('ok'));
    });
  } finally {
    c.close();
  }
}

const u = flat([0.2, -0.1, 0.3, 0.05, 0.1, -0.2, 0.0, 0.4, 0.1]);
const other = flat([-0.1, 0.3, 0.1, 0.2, -0.05, 0.1, 0.3, -0.2, 0.05]);

// The secure task's records go first into the same partitions, so by the time the plain round's
// updates have been consumed, the collector has seen (and must have dropped) the secure ones.
test('a round is scored end to end: zero update ~ 0, identical updates equal; tiers are enforced at the registry; secure rounds never open an update', async () => {
  const secure = await publishedRound({ secure: true, updates: { 's-one': u, 's-two': other, 's-three': u } });
  const plain = await publishedRound({ secure: false, updates: { alpha: u, beta: u, gamma: other, zero: new Float32Array(9) }, rejected: { mallory: flat(Array(9).fill(50)) } });

  const res = await client.score(plain.task, 1);
  assert.equal(res.method, 'exact');
  assert.equal(res.utility, 'consensus-distance');
  assert.equal(res.secure, false);
  const v = res.values;
  assert.deepEqual(Object.keys(v).sort(), ['alpha', 'beta', 'gamma', 'zero'], 'only the round record decides who counts; the rejected upload is not valued');
  assert.ok(Math.abs(v['zero']!) < 1e-6, `a zero update is a null player, got ${v['zero']}`);
  assert.ok(Math.abs(v['alpha']! - v['beta']!) < 1e-6, 'identical updates get equal values');
  assert.ok(v['alpha']! > 0.1 && v['gamma']! > 0.05);
  assert.ok(Math.abs(Object.values(v).reduce((s, x) => s + x, 0) - 1) < 1e-5, 'values sum to v(all) - v(empty) = 1');
  assert.equal(files.reads.get(plain.task), 4);
  assert.deepEqual(await files.list(plain.task, 1), [], 'updates are deleted after scoring');

  const table = new Map(res.contributions.map((c) => [c.tenant, c]));
  assert.equal(table.get('zero')?.tier, 'free-rider');
  assert.equal(table.get('zero')?.versionDelayRounds, 2);
  assert.equal(table.get('alpha')?.tier, 'full');
  assert.ok(Math.abs(res.contributions.reduce((s, c) => s + c.rewardShare, 0) - 1) < 1e-9);
  assert.equal(await download(plain.outputVersionId, 'alpha'), 'ok');
  assert.equal(await download(plain.outputVersionId, 'zero'), 'PERMISSION_DENIED');

  // Scoring again returns the same round, counted once.
  const again = await client.score(plain.task, 1);
  assert.deepEqual(again.values, res.values);
  const got = await client.contributions(plain.task);
  assert.equal(got.rounds.length, 1);
  assert.ok(Math.abs(got.contributions.find((c) => c.tenant === 'alpha')!.cumulativeValue - v['alpha']!) < 1e-12);

  const sec = await client.score(secure.task, 1);
  assert.equal(sec.method, 'secure-group');
  assert.equal(sec.secure, true);
  for (const m of secure.members) assert.ok(Math.abs(sec.values[m]! - 1 / 3) < 1e-6, 'one secure group: its value is split equally');
  assert.equal(files.reads.get(secure.task), undefined, 'no individual update of a secure task was read');
  assert.deepEqual(await files.list(secure.task, 1), [], 'no individual update of a secure task was kept');

  // The audit trail holds the contributions, and its chain verifies.
  const audit = createRpcClient(apb.AuditServiceService, `127.0.0.1:${valuation.port}`);
  try {
    const records = (await audit.listRecords({ taskId: plain.task, afterSeq: 0, limit: 0 })).records;
    assert.deepEqual(records.map((r) => r.kind), ['contribution.recorded', 'reward.assigned']);
    const payload = JSON.parse(records[0]!.payloadJson) as { values: Record<string, number>; method: string };
    assert.equal(payload.method, 'exact');
    assert.deepEqual(payload.values, v);
    const verdict = await audit.verifyChain({ taskId: plain.task });
    assert.equal(verdict.ok, true);
    assert.equal(verdict.length, 2);
  } finally {
    audit.close();
  }
});

test('ScoreRound refuses rounds that are not published and tasks that do not exist', async () => {
  await assert.rejects(client.score(`nope-${run}`, 1), /NOT_FOUND|does not exist/);
  const task = `val-open-${run}`;
  await store.put(taskKey(task), JSON.stringify({ taskId: task, modelId: 'x', members: ['a'], termsJson: '', valuationMethod: '', privacy: { secureAggregation: false } }));
  await store.put(roundKey(task, 1), JSON.stringify({ taskId: task, number: 1, attempt: 1, state: 'collecting', received: [], layout: { tensors: [] } }));
  await assert.rejects(client.score(task, 1), /only a published round can be scored/);
});

test('secure aggregation in groups: Shapley over each round\'s group sums, re-drawn groups single out a sign-flipped company, no update is read and the sums go once scored', async () => {
  const task = `val-groups-${run}`;
  const modelId = `m-g-${run}`.toLowerCase();
  const reg = createRpcClient(rpb.RegistryServiceService, `127.0.0.1:${registry.port}`);
  await reg.createModel({ modelId, description: 'valuation groups test', configJson: '' }).finally(() => reg.close());
  const members = ['a', 'b', 'c', 'h'];
  const good = (i: number): Float32Array => u.map((x, j) => x + 0.02 * Math.sin(i + j));
  const updates: Record<string, Float32Array> = { a: good(1), b: good(2), c: good(3), h: u.map((x) => -x) };
  const terms = { accessTiers: { tiers: [{ name: 'full', minShare: 0.1, versionDelay: 0 }, { name: 'free-rider', minShare: 0, versionDelay: 2 }] } };
  const taskRecord: Partial<TaskRecord> = {
    taskId: task, modelId, baseVersionId: '', members, rounds: 3, termsJson: JSON.stringify(terms), valuationMethod: '', clientConfig: {}, state: 'running', currentRound: 3,
    privacy: { mode: 'none', noiseMultiplier: 0, targetEpsilon: 0, delta: 0, clipNorm: 1, accountant: 'rdp', secureAggregation: true, secaggThreshold: 2, secaggNumShares: 0, secaggGroupSize: 2 },
  };
  await store.put(taskKey(task), JSON.stringify(taskRecord));
  // The aggregator re-draws groups every round; here h shares a group with each of the others once.
  const partitions = [[['a', 'h'], ['b', 'c']], [['b', 'h'], ['a', 'c']], [['c', 'h'], ['a', 'b']]];
  let previous = flat([0.5, -0.5, 0.25, 1, 0, -1, 0.5, 0.5, 0.5]);
  let input = await uploadAdapter(modelId, '', task, 0, previous);
  for (const [k, partition] of partitions.entries()) {
    const n = k + 1;
    const mean = new Float32Array(layout.totalElements);
    for (const m of members) for (let i = 0; i < mean.length; i++) mean[i]! += updates[m]![i]! / members.length;
    const next = previous.map((p, i) => p + mean[i]!);
    const output = await uploadAdapter(modelId, input, task, n, next);
    const secaggGroups = partition.map((g, i) => ({ group: `g${i + 1}`, participants: g, survivors: g, stage: 'done' }) as unknown as SecAggRoundState);
    for (const [i, g] of partition.entries()) {
      const sum = new Float32Array(layout.totalElements);
      for (const m of g) for (let j = 0; j < sum.length; j++) sum[j]! += updates[m]![j]!;
      const doc: GroupSumShard = { group: `g${i + 1}`, shard: 0, offset: 0, survivors: g, values: Buffer.from(sum.buffer).toString('base64') };
      await store.put(groupSumKey(task, n, 1, `g${i + 1}`, 0), JSON.stringify(doc));
    }
    const round: Partial<RoundRecord> = {
      taskId: task, number: n, attempt: 1, state: 'published', selected: members, dropped: [], inputVersionId: input, outputVersionId: output, secaggGroups,
      received: members.map((tenant) => ({ tenant, sha256: 'x', numExamples: 10, bytes: 36, tensors: [], numShards: 1, samplingRate: 1, noiseMultiplier: 0, steps: 1, at: Date.now() })),
      layout: { tensors: TENSORS.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })), fingerprint: layout.fingerprint, totalElements: layout.totalElements },
    };
    await store.put(roundKey(task, n), JSON.stringify(round));
    const res = await client.score(task, n);
    assert.equal(res.method, 'secure-group');
    assert.equal(res.secure, true);
    const [p1, p2] = partition as [string[], string[]];
    assert.equal(res.values[p1[0]!], res.values[p1[1]!], 'members of one group share its value equally');
    assert.ok(res.values[p2[0]!]! > res.values[p1[0]!]!, `round ${n}: the group without h is worth more (${JSON.stringify(res.values)})`);
    assert.ok(Math.abs(Object.values(res.values).reduce((x, y) => x + y, 0) - 1) < 1e-5, 'values sum to v(all) - v(empty) = 1');
    assert.deepEqual(await store.list(groupSumPrefix(task, n, 1)), [], 'group sums are deleted once the round is scored');
    previous = next;
    input = output;
  }
  const table = (await client.contributions(task)).contributions;
  const cumulative = new Map(table.map((c) => [c.tenant, c.cumulativeValue]));
  for (const m of ['a', 'b', 'c']) assert.ok(cumulative.get('h')! < cumulative.get(m)! - 0.1, `h ends lowest: ${JSON.stringify([...cumulative])}`);
  assert.equal(files.reads.get(task), undefined, 'no individual update of the task was read');
});
