import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '@fedmm/core';
import type { BusMessage } from '@fedmm/bus';
import { task as tpb } from '@fedmm/proto';
import { createLayout, decodeUpdateChunk, decodeVerdict, recordKind } from '@fedmm/tensor';
import { addTask, rejectsWith, startHarness, UpdateCollector, type FakeTask, type Harness } from './harness.js';
import { buildUpdate, sendUpdate, upload, values, type BuiltUpdate } from './updates.js';

let h: Harness;
const collector = new UpdateCollector();

before(async () => {
  h = await startHarness();
  await collector.start(h.bus);
});

after(async () => {
  await collector.stop();
  await h.stop();
});

const ROUND_TENSORS = [
  { name: 'enc.image.lora_A', shape: [256, 1024], modality: 'image' },
  { name: 'enc.sensor.lora_A', shape: [64, 64], modality: 'sensor' },
  { name: 'enc.text.lora_A', shape: [300, 1001], modality: 'text' },
  { name: 'fusion.lora_B', shape: [513, 777] },
  { name: 'head.lora_B', shape: [100, 999] },
];

/** Every dtype, and the sensor adapter left out (a company without that modality). */
function mixedUpdate(t: FakeTask, uploadId: string): BuiltUpdate {
  return buildUpdate(t.task.taskId, 1, uploadId, [
    { name: 'enc.image.lora_A', shape: [256, 1024], dtype: 'F16' },
    { name: 'enc.text.lora_A', shape: [300, 1001], dtype: 'BF16' },
    { name: 'fusion.lora_B', shape: [513, 777], dtype: 'F32' },
    { name: 'head.lora_B', shape: [100, 999], dtype: 'I8' },
  ]);
}

const split = (msgs: BusMessage[]) => ({ chunks: msgs.filter((m) => recordKind(m.headers) === 'chunk'), verdicts: msgs.filter((m) => recordKind(m.headers) === 'verdict') });

/** Reassembles the published chunks of one upload into the round's flattened space (NaN where nothing was sent). */
function reassemble(t: FakeTask, chunks: BusMessage[]) {
  const layout = createLayout(ROUND_TENSORS.map((x) => ({ ...x, dtype: 'F32' as const })));
  const flat = new Float32Array(layout.totalElements).fill(Number.NaN);
  const seen = new Set<string>();
  const perShard = new Map<number, number>();
  for (const m of chunks) {
    const c = decodeUpdateChunk(m.headers, m.value, { requireFinite: true, layout, shardElements: t.policy.shardElements });
    assert.equal(c.dtype, 'F32');
    const id = `${c.shard}/${c.seq}`;
    assert.ok(!seen.has(id), `chunk ${id} was published twice`);
    seen.add(id);
    perShard.set(c.shard, (perShard.get(c.shard) ?? 0) + 1);
    assert.equal(m.key, `1/${c.shard}`);
    flat.set(c.values, c.elementOffset);
  }
  return { layout, flat, perShard };
}

function assertLanded(t: FakeTask, u: BuiltUpdate, chunks: BusMessage[]): Map<number, number> {
  const { layout, flat, perShard } = reassemble(t, chunks);
  for (const e of layout.entries) {
    const got = flat.subarray(e.offset, e.offset + e.length);
    const exp = u.expected.get(e.name);
    if (exp) assert.deepEqual(got, exp, `tensor ${e.name}`);
    else assert.ok(got.every(Number.isNaN), `${e.name} was not sent and must not appear`);
  }
  for (const [shard, n] of perShard) {
    for (const m of chunks.filter((c) => c.headers['fedmm-shard'] === String(shard))) assert.equal(m.headers['fedmm-seq-count'], String(n));
  }
  return perShard;
}

test('a multi-tensor update in every dtype lands in Kafka shard by shard, then accept verdicts, then the report', async () => {
  const t = addTask(h, ROUND_TENSORS, { shardElements: 65_536 });
  const u = mixedUpdate(t, 'up-1');
  const client = h.client('acme');
  // An odd chunk size splits elements between chunks.
  const res = await upload(client, u, { chunkBytes: 1024 * 1024 - 3 });
  assert.deepEqual({ ...res }, { uploadId: 'up-1', bytesReceived: u.bytes.length, complete: true, shards: res.shards });
  const msgs = await collector.waitFor(t.task.taskId, (m) => split(m).verdicts.length === res.shards, 'the verdicts');
  const { chunks, verdicts } = split(msgs);
  for (const m of msgs) {
    assert.equal(m.headers['fedmm-upload'], 'up-1');
    assert.equal(m.headers['fedmm-client'], 'acme');
  }
  const perShard = assertLanded(t, u, chunks);
  assert.equal(perShard.size, res.shards);
  for (const m of verdicts) {
    const v = decodeVerdict(m.headers);
    assert.equal(v.accept, true);
    assert.equal(v.seqCount, perShard.get(v.shard));
    assert.equal(v.numExamples, 100);
    assert.equal(v.attempt, 1);
    assert.equal(v.updateSha256, u.header.sha256);
    assert.ok(Math.abs(v.norm - Math.sqrt(u.sumSquares)) < 1e-6 * Math.sqrt(u.sumSquares));
    // A verdict follows every chunk of its shard in the partition.
    for (const c of chunks.filter((c) => c.headers['fedmm-shard'] === String(v.shard))) {
      assert.equal(c.partition, m.partition);
      assert.ok(BigInt(c.offset) < BigInt(m.offset));
    }
  }
  assert.equal(t.reports.length, 1);
  const r = t.reports[0]!;
  assert.deepEqual([r.tenant, r.updateSha256, r.numExamples, r.numShards, r.bytes, r.steps], ['acme', u.header.sha256, 100, res.shards, u.bytes.length, 50]);
  assert.deepEqual(r.tensors, ['enc.image.lora_A', 'enc.text.lora_A', 'fusion.lora_B', 'head.lora_B']);
  assert.deepEqual({ ...(await client.getUploadStatus({ taskId: t.task.taskId, round: 1, uploadId: 'up-1' })) }, { bytesReceived: u.bytes.length, complete: true, size: u.bytes.length });

  // The same upload again (a lost response) answers the same result and publishes nothing new.
  const again = await upload(client, u);
  assert.equal(again.complete, true);
  assert.equal(t.reports.length, 1);
  // Any other upload of this tenant to the round is a duplicate.
  await rejectsWith(upload(client, mixedUpdate(t, 'up-2')), 'ALREADY_EXISTS', /already delivered an update to round 1/);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((collector.byTask.get(t.task.taskId) ?? []).length, msgs.length);
});

test('an upload cut mid-stream resumes from the acknowledged offset without publishing anything twice', async () => {
  const t = addTask(h, ROUND_TENSORS, { shardElements: 100_000 });
  const u = mixedUpdate(t, 'resume-1');
  const client = h.client('globex');
  const first = sendUpdate(client, u.header, u.bytes, { stopAfter: 2, chunkBytes: 512 * 1024 + 1 });
  await first.written;
  const ref = { taskId: t.task.taskId, round: 1, uploadId: 'resume-1' };
  const acked = await waitFor(async () => {
    const s = await client.getUploadStatus(ref).catch(() => undefined);
    return s && s.bytesReceived > 0 ? s : undefined;
  }, { timeoutMs: 10_000, what: 'the first chunks to be acknowledged' });
  assert.equal(acked.complete, false);
  assert.equal(acked.size, u.bytes.length);
  assert.ok(acked.bytesReceived <= 2 * (512 * 1024 + 1));
  first.call.cancel();
  await assert.rejects(first.result, /Cancelled/);

  const status1 = await client.getUploadStatus(ref);
  // Resume from the acknowledged offset with differently sized chunks.
  const res = await sendUpdate(client, u.header, u.bytes, { from: status1.bytesReceived, chunkBytes: 700_001 }).result;
  assert.equal(res.complete, true);
  assert.equal(res.bytesReceived, u.bytes.length);
  const msgs = await collector.waitFor(t.task.taskId, (m) => split(m).verdicts.length === res.shards, 'the verdicts');
  assertLanded(t, u, split(msgs).chunks);
  assert.ok(split(msgs).verdicts.every((m) => decodeVerdict(m.headers).accept));
  assert.equal(t.reports.length, 1);
});

test('a report the coordinator missed is retried when the client sends the header again', async () => {
  const t = addTask(h, [{ name: 'w', shape: [1000] }]);
  t.failReports = 1;
  const u = buildUpdate(t.task.taskId, 1, 'rep-1', [{ name: 'w', shape: [1000], dtype: 'F32' }]);
  const client = h.client('acme');
  await rejectsWith(upload(client, u), 'UNAVAILABLE', /the coordinator did not answer/);
  assert.deepEqual({ ...(await client.getUploadStatus({ taskId: t.task.taskId, round: 1, uploadId: 'rep-1' })) }, { bytesReceived: 4000, complete: false, size: 4000 });
  const res = await sendUpdate(client, u.header, u.bytes, { from: 4000 }).result;
  assert.equal(res.complete, true);
  assert.equal(t.reports.length, 1);
  const { verdicts } = split(await collector.waitFor(t.task.taskId, (m) => split(m).verdicts.length >= 1, 'verdicts'));
  assert.equal(verdicts.length, 1);
});

test('the round policy decides who may upload: unknown task, closed round, not selected', async () => {
  const t = addTask(h, [{ name: 'w', shape: [10] }], { selected: ['acme'] });
  const u = (task: string) => buildUpdate(task, 1, 'p-1', [{ name: 'w', shape: [10], dtype: 'F32' }]);
  await rejectsWith(upload(h.client('acme'), u('no-such-task')), 'NOT_FOUND', /task no-such-task does not exist/);
  const denied = await rejectsWith(upload(h.client('globex'), u(t.task.taskId)), 'PERMISSION_DENIED', /tenant globex was not selected/);
  assert.doesNotMatch(denied.message.replace(/^.* at localhost:\d+: /, ''), /AggregatorService|127\.0\.0\.1/, 'the coordinator\'s address stays internal');
  const closed = addTask(h, [{ name: 'w', shape: [10] }], { state: tpb.RoundState.ROUND_STATE_SEALING });
  await rejectsWith(upload(h.client('acme'), u(closed.task.taskId)), 'FAILED_PRECONDITION', /is not open/);
});

test('header checks: unknown tensor, wrong shape, wrong dtype, too large', async () => {
  const t = addTask(h, [{ name: 'a', shape: [4, 8] }, { name: 'b', shape: [16] }], { maxUpdateBytes: 100 });
  const client = h.client('acme');
  const base = buildUpdate(t.task.taskId, 1, 'h-1', [{ name: 'b', shape: [16], dtype: 'F32' }]);
  const rejects = (header: typeof base.header, code: string, re: RegExp) => rejectsWith(sendUpdate(client, header, base.bytes).result, code, re);
  const tensor = base.header.layout!.tensors[0]!;
  await rejects({ ...base.header, layout: { tensors: [{ ...tensor, name: 'c' }], fingerprint: '' } }, 'INVALID_ARGUMENT', /tensor "c" is not part of round 1/);
  await rejects({ ...base.header, layout: { tensors: [{ ...tensor, shape: [4, 4] }], fingerprint: '' } }, 'INVALID_ARGUMENT', /shape \[4, 4\] but the round's layout has \[16\]/);
  await rejects({ ...base.header, layout: { tensors: [{ ...tensor, dtype: 0 }], fingerprint: '' } }, 'INVALID_ARGUMENT', /dtype D_TYPE_UNSPECIFIED/);
  const big = buildUpdate(t.task.taskId, 1, 'h-2', [{ name: 'a', shape: [4, 8], dtype: 'F32' }]);
  await rejects(big.header, 'RESOURCE_EXHAUSTED', /128 bytes exceeds the task's limit of 100 bytes/);
  assert.equal(collector.byTask.get(t.task.taskId), undefined, 'nothing was published');
});

test('content rejections after chunks were published send reject verdicts: NaN, sha256, norm', async () => {
  const t = addTask(h, [{ name: 'w', shape: [600_000] }], { maxUpdateNorm: 5, shardElements: 50_000 });
  const small = values(600_000, 7, 0.001);
  const cases: { id: string; tenant: string; make: () => BuiltUpdate; code: string; re: RegExp }[] = [
    {
      id: 'nan', tenant: 'acme', code: 'INVALID_ARGUMENT', re: /"w" element 550000 is NaN/,
      make: () => {
        const v = Float32Array.from(small);
        v[550_000] = Number.NaN;
        return buildUpdate(t.task.taskId, 1, 'nan', [{ name: 'w', shape: [600_000], dtype: 'F32', values: v }]);
      },
    },
    {
      id: 'sha', tenant: 'globex', code: 'DATA_LOSS', re: /sha256/,
      make: () => {
        const u = buildUpdate(t.task.taskId, 1, 'sha', [{ name: 'w', shape: [600_000], dtype: 'F32', values: small }]);
        return { ...u, header: { ...u.header, sha256: 'ab'.repeat(32) } };
      },
    },
    {
      id: 'norm', tenant: 'initech', code: 'INVALID_ARGUMENT', re: /update norm .* exceeds the task's bound 5; clip the update/,
      make: () => buildUpdate(t.task.taskId, 1, 'norm', [{ name: 'w', shape: [600_000], dtype: 'F32', values: values(600_000, 9, 1) }]),
    },
  ];
  t.round!.selected = ['acme', 'globex', 'initech'];
  for (const c of cases) {
    await rejectsWith(upload(h.client(c.tenant), c.make()), c.code, c.re);
  }
  const settled = (m: BusMessage[], id: string, all: boolean): boolean => {
    const { chunks, verdicts } = split(m.filter((x) => x.headers['fedmm-upload'] === id));
    const shards = new Set(chunks.map((x) => x.headers['fedmm-shard']));
    return verdicts.length > 0 && verdicts.length === shards.size && (!all || shards.size === 12);
  };
  const msgs = await collector.waitFor(t.task.taskId, (m) => settled(m, 'nan', false) && settled(m, 'sha', true) && settled(m, 'norm', true), 'reject verdicts');
  for (const c of cases) {
    const mine = msgs.filter((m) => m.headers['fedmm-upload'] === c.id);
    const { chunks, verdicts } = split(mine);
    const shards = new Set(chunks.map((m) => m.headers['fedmm-shard']));
    assert.ok(shards.size > 0, `${c.id}: chunks were published before the rejection`);
    assert.deepEqual(new Set(verdicts.map((m) => m.headers['fedmm-shard'])), shards, `${c.id}: one reject verdict per touched shard`);
    assert.ok(verdicts.every((m) => !decodeVerdict(m.headers).accept));
  }
  assert.equal(t.reports.length, 0);
  // A rejected upload id is spent.
  await rejectsWith(upload(h.client('acme'), cases[0]!.make()), 'FAILED_PRECONDITION', /was rejected: .*new upload id/);
});

test('a corrupted chunk is refused with DATA_LOSS and the upload resumes from the acknowledged offset', async () => {
  const t = addTask(h, [{ name: 'w', shape: [600_000] }]);
  const u = buildUpdate(t.task.taskId, 1, 'crc-1', [{ name: 'w', shape: [600_000], dtype: 'F32' }]);
  const client = h.client('acme');
  await rejectsWith(upload(client, u, { corruptChunk: 1 }), 'DATA_LOSS', /fails its CRC-32C check/);
  const s = await client.getUploadStatus({ taskId: t.task.taskId, round: 1, uploadId: 'crc-1' });
  assert.ok(s.bytesReceived <= 1024 * 1024);
  const res = await upload(client, u, { from: s.bytesReceived });
  assert.equal(res.complete, true);
});

test('a tenant may hold only FEDMM_GATEWAY_MAX_STREAMS_PER_TENANT streams at once', async () => {
  const client = h.client('umbrella');
  const open = [];
  for (let i = 0; i < 4; i++) {
    const t = addTask(h, [{ name: 'w', shape: [1_000_000] }], { members: ['umbrella'], selected: ['umbrella'] });
    const u = buildUpdate(t.task.taskId, 1, `s-${i}`, [{ name: 'w', shape: [1_000_000], dtype: 'F32' }]);
    const c = sendUpdate(client, u.header, u.bytes, { stopAfter: 1 });
    await c.written;
    open.push(c);
  }
  const t = addTask(h, [{ name: 'w', shape: [10] }], { members: ['umbrella'], selected: ['umbrella'] });
  await rejectsWith(upload(client, buildUpdate(t.task.taskId, 1, 's-x', [{ name: 'w', shape: [10], dtype: 'F32' }])), 'RESOURCE_EXHAUSTED', /limit is 4 \(FEDMM_GATEWAY_MAX_STREAMS_PER_TENANT\)/);
  // Another tenant is not affected.
  const other = addTask(h, [{ name: 'w', shape: [10] }]);
  assert.equal((await upload(h.client('acme'), buildUpdate(other.task.taskId, 1, 'o-1', [{ name: 'w', shape: [10], dtype: 'F32' }]))).complete, true);
  for (const c of open) c.call.cancel();
});
