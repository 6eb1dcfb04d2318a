// Uploads resumed through another gateway: two gateways on the same Kafka and Redis, the session
// continued from the store at the acknowledged offset.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '@fedmm/core';
import type { BusMessage } from '@fedmm/bus';
import type { HostedService } from '@fedmm/service-kit';
import { createLayout, decodeUpdateChunk, decodeVerdict, recordKind } from '@fedmm/tensor';
import { addTask, rejectsWith, startHarness, UpdateCollector, type FakeTask, type GatewayClient, type Harness } from './harness.js';
import { buildUpdate, sendUpdate, type BuiltUpdate } from './updates.js';

let h: Harness;
const collector = new UpdateCollector();
const LEASE_MS = 3000;

before(async () => {
  h = await startHarness({ FEDMM_GATEWAY_UPLOAD_LEASE_MS: String(LEASE_MS) });
  await collector.start(h.bus);
});

after(async () => {
  await collector.stop();
  await h.stop();
});

const TENSORS = [
  { name: 'a.lora_A', shape: [512, 1024] },
  { name: 'b.lora_B', shape: [256, 1024] },
];
const SHARD = 65_536;
const CHUNK = 128 * 1024;

function update(t: FakeTask, uploadId: string): BuiltUpdate {
  return buildUpdate(t.task.taskId, 1, uploadId, TENSORS.map((x) => ({ ...x, dtype: 'F32' as const })));
}

/**
 * Folds the records as an aggregator worker does: chunks pending per (shard, seq), a duplicate
 * replacing its earlier copy, added to the sum on the shard's accept verdict when all its chunks are
 * there, dropped on a reject verdict.
 */
function foldLikeWorker(msgs: BusMessage[]): { sum: Float32Array; accepted: number[]; rejected: number[] } {
  const layout = createLayout(TENSORS.map((x) => ({ ...x, dtype: 'F32' as const })));
  const sum = new Float32Array(layout.totalElements);
  const pending = new Map<number, Map<number, { elementOffset: number; values: Float32Array }>>();
  const accepted: number[] = [];
  const rejected: number[] = [];
  for (const m of msgs) {
    if (recordKind(m.headers) === 'chunk') {
      const c = decodeUpdateChunk(m.headers, m.value, { requireFinite: true, layout, shardElements: SHARD });
      if (!pending.has(c.shard)) pending.set(c.shard, new Map());
      pending.get(c.shard)!.set(c.seq, { elementOffset: c.elementOffset, values: c.values as Float32Array });
      continue;
    }
    const v = decodeVerdict(m.headers);
    const pieces = pending.get(v.shard);
    pending.delete(v.shard);
    if (!v.accept) {
      rejected.push(v.shard);
      continue;
    }
    assert.ok(pieces && pieces.size === v.seqCount, `shard ${v.shard} has all its chunks at its accept verdict`);
    accepted.push(v.shard);
    for (const p of pieces.values()) for (let i = 0; i < p.values.length; i++) sum[p.elementOffset + i]! += p.values[i]!;
  }
  return { sum, accepted, rejected };
}

function expectedFlat(u: BuiltUpdate): Float32Array {
  const layout = createLayout(TENSORS.map((x) => ({ ...x, dtype: 'F32' as const })));
  const flat = new Float32Array(layout.totalElements);
  for (const e of layout.entries) flat.set(u.expected.get(e.name)!, e.offset);
  return flat;
}

/** Every chunk published more than once carries the same values each time (a resume republished it, nothing else). */
function assertDuplicatesIdentical(msgs: BusMessage[]): number {
  const seen = new Map<string, Buffer>();
  let dups = 0;
  for (const m of msgs.filter((x) => recordKind(x.headers) === 'chunk')) {
    const id = `${m.headers['fedmm-shard']}/${m.headers['fedmm-seq']}`;
    const prior = seen.get(id);
    if (prior) {
      dups++;
      assert.ok(prior.equals(Buffer.from(m.value)), `chunk ${id} was republished with other values`);
    } else seen.set(id, Buffer.from(m.value));
  }
  return dups;
}

async function statusOf(client: GatewayClient, t: FakeTask, uploadId: string) {
  return client.getUploadStatus({ taskId: t.task.taskId, round: 1, uploadId });
}

/** Sends part of the update through a gateway and waits until the store holds a checkpoint of at least `atLeast` bytes. */
async function partOnGateway(gw: HostedService, t: FakeTask, u: BuiltUpdate, chunks: number, atLeast: number) {
  const client = h.clientOf(gw, 'acme');
  const call = sendUpdate(client, u.header, u.bytes, { chunkBytes: CHUNK, stopAfter: chunks });
  await call.written;
  // NOT_FOUND until the gateway has read the header.
  await waitFor(async () => Number((await statusOf(client, t, u.header.uploadId).catch(() => ({ bytesReceived: 0 }))).bytesReceived) >= atLeast, { timeoutMs: 20_000, what: `a checkpoint of ${atLeast} bytes` });
  return call;
}

test('an upload cut by a gateway stop resumes through another gateway from the stored offset and aggregates as if uninterrupted', async () => {
  const t = addTask(h, TENSORS, { shardElements: SHARD });
  const u = update(t, 'resume-stop');
  const a = await h.startGateway({ FEDMM_GATEWAY_INSTANCE_ID: 'gw-resume-a' });
  const b = await h.startGateway({ FEDMM_GATEWAY_INSTANCE_ID: 'gw-resume-b' });
  try {
    const onA = await partOnGateway(a, t, u, 12, 4 * SHARD * 4);
    await a.stop();
    await assert.rejects(onA.result);

    const clientB = h.clientOf(b, 'acme');
    const st = await statusOf(clientB, t, u.header.uploadId);
    const from = Number(st.bytesReceived);
    assert.ok(from >= 4 * SHARD * 4 && from <= 12 * CHUNK, `B reports the bytes A had acknowledged (${from})`);
    assert.equal(from % (SHARD * 4), 0, 'the resume offset is a chunk boundary');
    assert.equal(st.complete, false);

    // Only the rest is sent; a chunk before the offset would be skipped, one past it is a gap.
    const res = await sendUpdate(clientB, u.header, u.bytes, { from, chunkBytes: CHUNK }).result;
    assert.equal(res.complete, true);
    assert.equal(Number(res.bytesReceived), u.bytes.length);
    assert.equal(t.reports.length, 1);
    assert.equal(t.reports[0]!.updateSha256, u.header.sha256);

    const plan = Math.ceil(u.bytes.length / (SHARD * 4));
    const msgs = await collector.waitFor(t.task.taskId, (m) => m.filter((x) => recordKind(x.headers) === 'verdict').length === plan, 'the accept verdicts');
    const dups = assertDuplicatesIdentical(msgs);
    assert.ok(dups <= 12 * CHUNK / (SHARD * 4) - from / (SHARD * 4), `only chunks after the checkpoint were republished (${dups})`);
    const folded = foldLikeWorker(msgs);
    assert.deepEqual(folded.accepted.sort((x, y) => x - y), [...Array(plan).keys()]);
    assert.deepEqual(folded.rejected, []);
    assert.deepEqual(folded.sum, expectedFlat(u), 'the aggregate equals the uninterrupted upload, nothing counted twice');
    const norm = decodeVerdict(msgs.find((x) => recordKind(x.headers) === 'verdict')!.headers).norm;
    assert.ok(Math.abs(norm - Math.sqrt(u.sumSquares)) < 1e-6 * Math.sqrt(u.sumSquares), 'the norm covers the bytes of both gateways');
    assert.deepEqual(await statusOf(clientB, t, u.header.uploadId), { bytesReceived: u.bytes.length, complete: true, size: u.bytes.length });
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('a resume through another gateway while the first still holds a stream takes the session over', async () => {
  const t = addTask(h, TENSORS, { shardElements: SHARD });
  const u = update(t, 'resume-live');
  const a = await h.startGateway({ FEDMM_GATEWAY_INSTANCE_ID: 'gw-live-a' });
  const b = await h.startGateway({ FEDMM_GATEWAY_INSTANCE_ID: 'gw-live-b' });
  try {
    // The stream to A stays open, as a connection that died unnoticed would.
    const onA = await partOnGateway(a, t, u, 8, 2 * SHARD * 4);
    const clientB = h.clientOf(b, 'acme');
    const from = Number((await statusOf(clientB, t, u.header.uploadId)).bytesReceived);
    assert.ok(from > 0);
    const started = Date.now();
    const res = await sendUpdate(clientB, u.header, u.bytes, { from, chunkBytes: CHUNK }).result;
    assert.equal(res.complete, true);
    assert.ok(Date.now() - started < LEASE_MS + 5000, 'A let go when asked, without waiting for its lease to lapse');
    await rejectsWith(onA.result, 'ABORTED', /resumed through another gateway/);
    const plan = Math.ceil(u.bytes.length / (SHARD * 4));
    const msgs = await collector.waitFor(t.task.taskId, (m) => m.filter((x) => recordKind(x.headers) === 'verdict').length === plan, 'the accept verdicts');
    assertDuplicatesIdentical(msgs);
    assert.deepEqual(foldLikeWorker(msgs).sum, expectedFlat(u));
    assert.equal(t.reports.length, 1);
    // A no longer acts for the session: finishing again through A answers the stored result.
    const again = await sendUpdate(h.clientOf(a, 'acme'), u.header, u.bytes, { from: u.bytes.length }).result;
    assert.equal(again.complete, true);
    assert.equal(t.reports.length, 1);
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('a resume with other bytes after the checkpoint fails with DATA_LOSS, rejects every touched shard and accepts nothing', async () => {
  const t = addTask(h, TENSORS, { shardElements: SHARD });
  const u = update(t, 'resume-corrupt');
  const a = await h.startGateway({ FEDMM_GATEWAY_INSTANCE_ID: 'gw-bad-a' });
  const b = await h.startGateway({ FEDMM_GATEWAY_INSTANCE_ID: 'gw-bad-b' });
  try {
    const onA = await partOnGateway(a, t, u, 6, 2 * SHARD * 4);
    onA.call.end();
    await onA.result;
    const clientB = h.clientOf(b, 'acme');
    const from = Number((await statusOf(clientB, t, u.header.uploadId)).bytesReceived);
    assert.ok(from > 0);
    // Another header under the same upload id is refused outright.
    const other = update(t, 'resume-corrupt');
    other.header.sha256 = 'ab'.repeat(32);
    await rejectsWith(sendUpdate(clientB, other.header, u.bytes, { from }).result, 'INVALID_ARGUMENT', /another header/);
    const tampered = Buffer.from(u.bytes);
    tampered.writeFloatLE(0.01, from + 4096);
    await rejectsWith(sendUpdate(clientB, u.header, tampered, { from, chunkBytes: CHUNK }).result, 'DATA_LOSS', /sha256/);
    const plan = Math.ceil(u.bytes.length / (SHARD * 4));
    const msgs = await collector.waitFor(t.task.taskId, (m) => m.filter((x) => recordKind(x.headers) === 'verdict').length === plan, 'the reject verdicts');
    const folded = foldLikeWorker(msgs);
    assert.deepEqual(folded.accepted, []);
    assert.deepEqual(folded.rejected.sort((x, y) => x - y), [...Array(plan).keys()], 'shards of both gateways are rejected');
    assert.ok(folded.sum.every((x) => x === 0));
    assert.equal(t.reports.length, 0);
    await rejectsWith(statusOf(h.clientOf(a, 'acme'), t, u.header.uploadId), 'FAILED_PRECONDITION', /rejected/);
    await rejectsWith(sendUpdate(h.clientOf(a, 'acme'), u.header, u.bytes, { from }).result, 'FAILED_PRECONDITION', /rejected/);
  } finally {
    await a.stop();
    await b.stop();
  }
});
