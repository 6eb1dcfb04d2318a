import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, generateKeyPairSync, verify } from 'node:crypto';
import { credentials } from '@grpc/grpc-js';
import { createLogger } from '@fedmm/core';
import { sha256Hex } from '@fedmm/tensor';
import { GatewayConnection } from './connection.js';
import { FakeGateway } from './testing/fake-gateway.js';
import { buildUpdatePayload } from './update-payload.js';
import { signTermsDigest, verifyTermsDigest } from './terms.js';

const gw = new FakeGateway();
let conn: GatewayConnection;
const quiet = createLogger({}, 'error');

before(async () => {
  await gw.start();
  conn = new GatewayConnection({ address: gw.address, credentials: credentials.createInsecure(), backoff: { baseMs: 5, capMs: 20, maxAttempts: 5 }, chunkBytes: 700, log: quiet });
});
after(async () => {
  conn.close();
  await gw.stop();
});

test('a cut download resumes from the bytes on disk and ends with the exact artifact', async () => {
  const bytes = randomBytes(10_500);
  gw.addVersion({ versionId: 'v-cut' }, bytes);
  gw.cutDownloadAfter = 4000;
  const dest = join(mkdtempSync(join(tmpdir(), 'fedmm-dl-')), 'v.safetensors');
  const out = await conn.downloadVersion('v-cut', dest);
  assert.deepEqual(readFileSync(dest), bytes);
  assert.deepEqual(out.resumedFrom, [0, 4000]);
  assert.deepEqual(gw.downloadOffsets.filter((d) => d.versionId === 'v-cut').map((d) => d.offset), [0, 4000]);
});

test('a download picks up a partial file left by an earlier process', async () => {
  const bytes = randomBytes(5000);
  gw.addVersion({ versionId: 'v-part' }, bytes);
  const dest = join(mkdtempSync(join(tmpdir(), 'fedmm-dl-')), 'v.safetensors');
  writeFileSync(`${dest}.part`, bytes.subarray(0, 3000));
  const out = await conn.downloadVersion('v-part', dest);
  assert.deepEqual(out.resumedFrom, [3000]);
  assert.deepEqual(readFileSync(dest), bytes);
});

test('a chunk that fails its CRC is not written; the download resumes before it', async () => {
  const bytes = randomBytes(6000);
  gw.addVersion({ versionId: 'v-crc' }, bytes);
  gw.corruptChunkAt = 3000;
  const dest = join(mkdtempSync(join(tmpdir(), 'fedmm-dl-')), 'v.safetensors');
  const out = await conn.downloadVersion('v-crc', dest);
  assert.deepEqual(out.resumedFrom, [0, 3000]);
  assert.equal(sha256Hex(readFileSync(dest)), sha256Hex(bytes));
});

test('bad bytes already on disk are caught by the final sha256 and downloaded again', async () => {
  const bytes = randomBytes(5000);
  gw.addVersion({ versionId: 'v-bad-part' }, bytes);
  const dest = join(mkdtempSync(join(tmpdir(), 'fedmm-dl-')), 'v.safetensors');
  const wrong = Buffer.from(bytes.subarray(0, 2000));
  wrong[10] = wrong[10]! ^ 0xff;
  writeFileSync(`${dest}.part`, wrong);
  const out = await conn.downloadVersion('v-bad-part', dest);
  assert.deepEqual(out.resumedFrom, [2000, 0]);
  assert.deepEqual(readFileSync(dest), bytes);
});

test('a cut upload asks for the upload status and resumes from bytes_received under the same upload id', async () => {
  const data = new Float32Array(1500).map((_, i) => Math.sin(i));
  const update = buildUpdatePayload([{ name: 'head.lora_B', shape: [3, 500], data }, { name: 'head.lora_A', shape: [10], data: new Float32Array(10).fill(0.5) }]);
  gw.cutUploadAfterChunks = 3;
  const out = await conn.uploadUpdate({ taskId: 't', round: 1, uploadId: 'up-1', update, numExamples: 12 });
  const held = gw.uploads.get('up-1')!;
  assert.ok(held.complete);
  assert.deepEqual(new Uint8Array(held.bytes), update.bytes);
  assert.equal(out.attempts, 2);
  assert.deepEqual(out.resumedFrom, [0, 2100]);
  assert.deepEqual(gw.uploadStarts.filter((s) => s.uploadId === 'up-1').map((s) => s.firstOffset), [0, 2100]);
  assert.deepEqual(gw.statusCalls, ['up-1']);
  // Payload = tensors' bytes in name order, F32 little-endian.
  assert.deepEqual(update.layout.entries.map((e) => e.name), ['head.lora_A', 'head.lora_B']);
  assert.equal(new Float32Array(update.bytes.buffer, update.bytes.byteOffset + 40, 1)[0], data[0]);
});

test('a resumed upload whose bytes all arrived sends nothing again', async () => {
  const update = buildUpdatePayload([{ name: 'x', shape: [4], data: new Float32Array([1, 2, 3, 4]) }]);
  await conn.uploadUpdate({ taskId: 't', round: 2, uploadId: 'up-2', update, numExamples: 1 });
  const starts = gw.uploadStarts.length;
  const again = await conn.uploadUpdate({ taskId: 't', round: 2, uploadId: 'up-2', update, numExamples: 1, resume: true });
  assert.equal(gw.uploadStarts.length, starts);
  assert.deepEqual(again.resumedFrom, [16]);
});

test('uploads give up after the bounded number of tries when the gateway stays down', async () => {
  gw.down = true;
  const update = buildUpdatePayload([{ name: 'x', shape: [1], data: new Float32Array([1]) }]);
  try {
    await assert.rejects(conn.uploadUpdate({ taskId: 't', round: 3, uploadId: 'up-3', update, numExamples: 1 }), (e: Error & { code?: string }) => e.code === 'UNAVAILABLE');
  } finally {
    gw.down = false;
  }
});

test('the subscription reconnects after the stream breaks and announces each connection', async () => {
  const ac = new AbortController();
  const seen: string[] = [];
  const it = conn.subscribe(['t'], ac.signal);
  const first = await it.next();
  assert.equal(first.value?.kind, 'connected');
  await waitUntil(() => gw.subscribers.size === 1);
  gw.publish({ taskId: 't', round: 1, timeUnixMs: 1, event: { $case: 'failed', value: { reason: 'x', willRetry: true } } });
  const ev = await it.next();
  seen.push(ev.value?.kind ?? '');
  gw.dropSubscribers();
  const re = await it.next();
  assert.equal(re.value?.kind, 'connected');
  assert.equal(re.value?.kind === 'connected' ? re.value.reconnects : -1, 1);
  await waitUntil(() => gw.subscribers.size === 1);
  gw.publish({ taskId: 't', round: 2, timeUnixMs: 2, event: { $case: 'failed', value: { reason: 'y', willRetry: false } } });
  const ev2 = await it.next();
  assert.equal(ev2.value?.kind === 'event' ? ev2.value.event.round : -1, 2);
  ac.abort();
  assert.deepEqual(seen, ['event']);
  assert.equal((await it.next()).done, true);
});

test('a stream that breaks, or is cancelled, while the caller is busy with a round neither crashes the process nor is lost', { timeout: 10_000 }, async () => {
  gw.dropSubscribers();
  const ac = new AbortController();
  const it = conn.subscribe(['t'], ac.signal);
  assert.equal((await it.next()).value?.kind, 'connected');
  await waitUntil(() => gw.subscribers.size === 1);
  // The caller is "training": the generator waits at its yield while the stream breaks.
  gw.dropSubscribers();
  await new Promise((r) => setTimeout(r, 100));
  const re = await it.next();
  assert.equal(re.value?.kind === 'connected' ? re.value.reconnects : -1, 1, 'the break was noticed and the stream reopened');
  await waitUntil(() => gw.subscribers.size === 1);
  // SIGTERM while busy: the cancelled call reports CANCELLED to nobody.
  ac.abort();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await it.next()).done, true);
});

test('a terms signature verifies with the tenant key over the digest text, and not for another digest or key', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const digest = 'a'.repeat(64);
  const sig = signTermsDigest(digest, privateKey);
  assert.ok(verifyTermsDigest(digest, sig, publicKey));
  // The gateway's check: ECDSA-SHA256 over the digest's UTF-8 text.
  assert.ok(verify('sha256', Buffer.from(digest, 'utf8'), publicKey, sig));
  assert.ok(!verifyTermsDigest('b'.repeat(64), sig, publicKey));
  assert.ok(!verifyTermsDigest(digest, sig, other.publicKey));
});

async function waitUntil(fn: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !fn(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(fn(), 'condition not reached');
}
