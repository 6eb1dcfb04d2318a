import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { credentials as grpcCredentials } from '@grpc/grpc-js';
import { Topics } from '@fedmm/bus';
import { events as epb, gateway as gpb, registry as rpb, task as tpb } from '@fedmm/proto';
import { readClientTlsFiles } from '@fedmm/pki';
import { createRpcClient, fromServiceError } from '@fedmm/service-kit';
import { crc32c, makeTensor, serializeSafetensors } from '@fedmm/tensor';
import { addTask, rejectsWith, startHarness, type GatewayClient, type Harness } from './harness.js';
import { values } from './updates.js';

let h: Harness;

before(async () => {
  h = await startHarness();
});

after(async () => {
  await h.stop();
});

test('clients without a certificate, or with one from another CA, are refused; a tenant certificate is the identity', async () => {
  const t = addTask(h, [{ name: 'w', shape: [4] }]);
  const noCert = h.clientWith(grpcCredentials.createSsl(Buffer.from(h.caPem())));
  await rejectsWith(noCert.getTask({ taskId: t.task.taskId }, { deadlineMs: 5000 }), 'UNAVAILABLE');
  const foreign = h.client('acme', { otherCa: true });
  await rejectsWith(foreign.getTask({ taskId: t.task.taskId }, { deadlineMs: 5000 }), 'UNAVAILABLE');
  const res = await h.client('acme').getTask({ taskId: t.task.taskId });
  assert.equal(res.task?.taskId, t.task.taskId);
  assert.equal(res.currentRound?.number, 1);
  await rejectsWith(h.client('umbrella').getTask({ taskId: t.task.taskId }), 'PERMISSION_DENIED', /umbrella is not a member/);
  await rejectsWith(h.client('acme').getTask({ taskId: 'gw-none' }), 'NOT_FOUND');
});

async function readAll(stream: AsyncIterable<gpb.DownloadModelResponse>, limit = Infinity): Promise<{ bytes: Buffer; version?: rpb.ModelVersion; chunks: number }> {
  const parts: Buffer[] = [];
  let version: rpb.ModelVersion | undefined;
  let chunks = 0;
  const it = (async function* () {
    try {
      yield* stream;
    } catch (e) {
      throw fromServiceError(e, 'DownloadModel');
    }
  })();
  for await (const m of it) {
    version ??= m.version;
    if (m.chunk) {
      assert.equal(crc32c(m.chunk.data), m.chunk.crc32c);
      parts.push(Buffer.from(m.chunk.data));
      if (++chunks >= limit) break;
    }
  }
  return { bytes: Buffer.concat(parts), chunks, ...(version ? { version } : {}) };
}

test('models download through the gateway from the registry, resumable by offset, under the tenant\'s access rule', async () => {
  const registry = createRpcClient(rpb.RegistryServiceService, h.registry.address);
  const modelId = `gw-model-${Date.now()}`;
  await registry.createModel({ modelId, description: 'gateway test', configJson: '{}' });
  const artifact = Buffer.from(serializeSafetensors({ 'w.lora_A': makeTensor('F32', [800, 1000], values(800_000, 3)) }));
  const sha = createHash('sha256').update(artifact).digest('hex');
  const version = await new Promise<rpb.ModelVersion>((resolve, reject) => {
    const call = registry.uploadVersion({}, (err, res) => (err ? reject(err) : resolve(res!.version!)));
    call.write({ payload: { $case: 'header', value: rpb.UploadVersionHeader.fromPartial({ modelId, kind: rpb.ModelKind.MODEL_KIND_BASE, artifactSha256: sha, artifactSize: artifact.length }) } });
    for (let off = 0; off < artifact.length; off += 1024 * 1024) {
      const data = artifact.subarray(off, off + 1024 * 1024);
      call.write({ payload: { $case: 'chunk', value: { offset: off, data, crc32c: crc32c(data) } } });
    }
    call.end();
  });
  const client = h.client('acme');
  const whole = await readAll(client.downloadModel({ versionId: version.versionId, offset: 0, taskId: '' }));
  assert.equal(whole.version?.artifactSha256, sha);
  assert.ok(whole.bytes.equals(artifact));

  // Cut after two chunks, resume from the bytes received.
  const cut = client.downloadModel({ versionId: version.versionId, offset: 0, taskId: '' });
  const head = await readAll(cut, 2);
  cut.cancel();
  assert.equal(head.chunks, 2);
  const rest = await readAll(client.downloadModel({ versionId: version.versionId, offset: head.bytes.length, taskId: '' }));
  assert.ok(Buffer.concat([head.bytes, rest.bytes]).equals(artifact));

  await registry.setAccessRule({ rule: { modelId, tenant: 'globex', versionDelayRounds: 0, denied: true, tier: 'none' } });
  await rejectsWith(readAll(h.client('globex').downloadModel({ versionId: version.versionId, offset: 0, taskId: '' })), 'PERMISSION_DENIED', /globex has no access/);
  // Selected for an open round whose input is this version, globex may fetch it to train; the tier
  // still applies to everything else, and to members not selected.
  const t = addTask(h, [{ name: 'w.lora_A', shape: [800, 1000] }], { selected: ['globex'] });
  t.round = { ...t.round!, inputVersionId: version.versionId };
  const granted = await readAll(h.client('globex').downloadModel({ versionId: version.versionId, offset: 0, taskId: t.task.taskId }));
  assert.ok(granted.bytes.equals(artifact));
  t.round = { ...t.round, selected: ['acme'] };
  await rejectsWith(readAll(h.client('globex').downloadModel({ versionId: version.versionId, offset: 0, taskId: t.task.taskId })), 'PERMISSION_DENIED', /globex has no access/);
  await rejectsWith(readAll(client.downloadModel({ versionId: 'gw-model-none@1', offset: 0, taskId: '' })), 'NOT_FOUND');
  registry.close();
});

function subscribe(client: GatewayClient, taskIds: string[]) {
  const stream = client.subscribeRoundEvents({ taskIds });
  const events: epb.RoundEvent[] = [];
  let error: Error | undefined;
  stream.on('data', (m: gpb.SubscribeRoundEventsResponse) => m.event && events.push(m.event));
  stream.on('error', (e: Error) => (error = e));
  return { stream, events, error: () => error };
}

async function until<T>(fn: () => T | undefined, what: string, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('round events: late subscribers get the open round, then live events of their tasks only', async () => {
  const mine = addTask(h, [{ name: 'w', shape: [4] }], { selected: ['acme', 'globex'] });
  const other = addTask(h, [{ name: 'w', shape: [4] }], { members: ['globex'] });
  const sub = subscribe(h.client('acme'), [mine.task.taskId]);
  const opened = await until(() => sub.events[0], 'the current round');
  assert.equal(opened.event?.$case, 'opened');
  assert.deepEqual(opened.event?.$case === 'opened' && opened.event.value.selected, ['acme', 'globex']);
  assert.equal(opened.round, 1);

  const sealed = (taskId: string): epb.RoundEvent => ({ taskId, round: 1, timeUnixMs: Date.now(), event: { $case: 'sealed', value: { received: ['acme'], dropped: [], updateEndOffsets: {}, attempt: 1 } } });
  await h.bus.publish(Topics.roundEvents, [
    { key: other.task.taskId, value: epb.RoundEvent.encode(sealed(other.task.taskId)).finish() },
    { key: mine.task.taskId, value: epb.RoundEvent.encode(sealed(mine.task.taskId)).finish() },
  ]);
  const live = await until(() => sub.events[1], 'the sealed event');
  assert.equal(live.taskId, mine.task.taskId);
  assert.equal(live.event?.$case, 'sealed');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(sub.events.length, 2, 'events of other tasks are not delivered');
  sub.stream.cancel();

  const denied = subscribe(h.client('acme'), [other.task.taskId]);
  const e = await until(() => denied.error(), 'the refusal');
  assert.match(e.message, /PERMISSION_DENIED|not a member/);
  const unknown = subscribe(h.client('acme'), ['gw-none']);
  assert.match((await until(() => unknown.error(), 'the refusal')).message, /does not exist/);
});

test('terms acceptance is verified against the client certificate key and recorded with the certificate', async () => {
  const t = addTask(h, [{ name: 'w', shape: [4] }]);
  const digest = t.task.termsDigest;
  const tls = readClientTlsFiles(h.pkiDir, 'acme');
  const signature = sign('sha256', Buffer.from(digest, 'utf8'), createPrivateKey(tls.keyPem));
  const client = h.client('acme');
  await client.acceptTerms({ taskId: t.task.taskId, termsDigest: digest, signature });
  assert.equal(t.acceptances.length, 1);
  assert.equal(t.acceptances[0]!.tenant, 'acme');
  assert.match(t.acceptances[0]!.certificatePem, /BEGIN CERTIFICATE/);
  assert.ok(Buffer.from(t.acceptances[0]!.signature).equals(signature));

  const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  await rejectsWith(client.acceptTerms({ taskId: t.task.taskId, termsDigest: digest, signature: sign('sha256', Buffer.from(digest), stranger) }), 'PERMISSION_DENIED', /does not verify/);
  await rejectsWith(client.acceptTerms({ taskId: t.task.taskId, termsDigest: 'cd'.repeat(32), signature }), 'FAILED_PRECONDITION', /now have digest/);
  assert.equal(t.acceptances.length, 1);
});

test('secure-aggregation messages are relayed between selected clients of the round only', async () => {
  const t = addTask(h, [{ name: 'w', shape: [4] }], { members: ['acme', 'globex', 'initech'], selected: ['acme', 'globex'] });
  const acme = h.client('acme');
  const globex = h.client('globex');
  const ref = { taskId: t.task.taskId, round: 1, stage: 1 };
  // globex waits; acme's message arrives while it waits.
  const waiting = globex.receiveSecAggMessages({ ...ref, waitSeconds: 10 });
  await new Promise((r) => setTimeout(r, 300));
  await acme.sendSecAggMessages({ ...ref, messages: [{ from: 'acme', to: 'globex', stage: 1, payload: Buffer.from('share-for-globex') }] });
  const got = await waiting;
  assert.equal(got.stageComplete, true);
  assert.deepEqual(got.messages.map((m) => [m.from, m.to, Buffer.from(m.payload).toString()]), [['acme', 'globex', 'share-for-globex']]);
  const none = await acme.receiveSecAggMessages({ ...ref, waitSeconds: 0 });
  assert.deepEqual([none.messages.length, none.stageComplete], [0, false]);

  await rejectsWith(h.client('initech').sendSecAggMessages({ ...ref, messages: [] }), 'PERMISSION_DENIED', /not selected/);
  await rejectsWith(acme.sendSecAggMessages({ ...ref, messages: [{ from: 'acme', to: 'initech', stage: 1, payload: Buffer.alloc(1) }] }), 'INVALID_ARGUMENT', /not a selected client/);
  await rejectsWith(acme.sendSecAggMessages({ ...ref, messages: [{ from: 'globex', to: 'acme', stage: 1, payload: Buffer.alloc(1) }] }), 'PERMISSION_DENIED', /caller is acme/);
  t.round!.state = tpb.RoundState.ROUND_STATE_PUBLISHED;
  await rejectsWith(acme.receiveSecAggMessages({ ...ref, waitSeconds: 0 }), 'FAILED_PRECONDITION', /not open/);
});
