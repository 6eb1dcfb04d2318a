import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { createLogger, FedmmError, waitFor } from '@fedmm/core';
import { events as epb, registry as rpb, tensor as tpb } from '@fedmm/proto';
import { adapterLayout, createBaseModel, initAdapters, initBackend, saveBase } from '@fedmm/model';
import { makeTensor, serializeSafetensors } from '@fedmm/tensor';
import { Agent } from './agent.js';
import { ADAPTER_METADATA_KEYS } from './model-source.js';
import { FakeGateway } from './testing/fake-gateway.js';

const gw = new FakeGateway();
const quiet = createLogger({}, 'error');
const CLASSES = ['a', 'b', 'c'];
let dataDir: string;
let testDir: string;

async function writeDataset(dir: string, n: number, seed: number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const words = [['hot', 'smoke', 'flame'], ['water', 'leak', 'drip'], ['crash', 'car', 'road']];
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const label = (i + seed) % 3;
    const sensor = [0, 1, 2].map((c) => Array.from({ length: 16 }, (_, t) => (c === label ? 1 : 0) + Math.sin(t + i) * 0.1));
    lines.push(JSON.stringify({ id: `s${i}`, text: `${words[label]!.join(' ')} report ${i}`, sensor, label: CLASSES[label] }));
  }
  await writeFile(join(dir, 'manifest.jsonl'), lines.join('\n') + '\n');
  await writeFile(join(dir, 'labels.json'), JSON.stringify(CLASSES));
}

before(async () => {
  await initBackend('wasm');
  const base = createBaseModel({ numClasses: 3, dModel: 16, vocabSize: 64, patchSize: 8, sensorWindow: 8, mlpRatio: 2 }, 7);
  const stored = saveBase(base);
  const baseBytes = serializeSafetensors(new Map([...stored.tensors].map(([n, t]) => [n, makeTensor('F32', t.shape, t.data)])), stored.metadata);
  gw.addVersion({ versionId: 'base-1', kind: rpb.ModelKind.MODEL_KIND_BASE }, baseBytes);
  const adapters = initAdapters(base, { rank: 2, alpha: 4, seed: 3 });
  const groups = new Map(adapterLayout(base, 2).map((t) => [t.name, t.group]));
  const adapterBytes = serializeSafetensors(new Map([...adapters.tensors].map(([n, t]) => [n, makeTensor('F32', t.shape, t.data)])), { [ADAPTER_METADATA_KEYS.alpha]: '4' });
  gw.addVersion({
    versionId: 'adapters-0',
    kind: rpb.ModelKind.MODEL_KIND_ADAPTER,
    parentVersionId: 'base-1',
    layout: { fingerprint: '', tensors: [...adapters.tensors].map(([name, t]) => ({ name, dtype: tpb.DType.D_TYPE_F32, shape: [...t.shape], scale: 0, modality: groups.get(name) === 'shared' ? '' : groups.get(name)! })) },
  }, adapterBytes);
  base.dispose();
  const root = mkdtempSync(join(tmpdir(), 'fedmm-agent-'));
  dataDir = join(root, 'train');
  testDir = join(root, 'test');
  await writeDataset(dataDir, 24, 0);
  await writeDataset(testDir, 12, 1);
  await gw.start();
});
after(() => gw.stop());

function opened(round: number, attempt = 1): epb.RoundEvent {
  return epb.RoundEvent.fromPartial({
    taskId: 'demo',
    round,
    event: { $case: 'opened', value: { selected: ['gridco', 'other'], inputVersionId: 'adapters-0', deadlineUnixMs: Date.now() + 600_000, clientConfig: { epochs: 1, batch_size: 8, learning_rate: 0.01, proximal_mu: 0.01 }, attempt } },
  });
}

function newAgent(workDir: string, taskIds: string[] = ['demo']): Agent {
  return new Agent({
    gateway: gw.address,
    credentials: credentials.createInsecure(),
    tenant: 'gridco',
    dataDir,
    testDir,
    workDir,
    taskIds,
    seed: 11,
    backoff: { baseMs: 5, capMs: 10, maxAttempts: 2 },
    taskWait: { baseMs: 20, capMs: 50 },
    chunkBytes: 512,
    log: quiet,
    progress: () => undefined,
  });
}

test('a crash between uploading and done resumes the same upload id, and a round is never uploaded twice', async () => {
  const work = mkdtempSync(join(tmpdir(), 'fedmm-agent-work-'));
  const first = newAgent(work);
  // The connection breaks after two chunks and the gateway stays away: the agent gives up for now.
  gw.cutUploadAfterChunks = 2;
  const goDown = setInterval(() => {
    if (gw.cutUploadAfterChunks === undefined) gw.down = true;
  }, 1);
  const out1 = await first.handleEvent(opened(1));
  clearInterval(goDown);
  gw.down = false;
  assert.equal((out1 as { status: string }).status, 'failed');
  const entry = first.state.get('demo', 1, 1)!;
  assert.equal(entry.status, 'uploading');
  assert.ok(entry.uploadId?.startsWith('gridco.demo.r1.a1.'));
  assert.equal(gw.uploads.get(entry.uploadId!)?.bytes.length, 1024);
  first.close();

  // A new process on the same work dir: it resumes the saved update instead of training a second one.
  const second = newAgent(work);
  const out2 = await second.handleEvent(opened(1));
  assert.equal((out2 as { status: string }).status, 'uploaded');
  assert.equal((out2 as { uploadId: string }).uploadId, entry.uploadId);
  const ups = [...gw.uploads.keys()].filter((k) => k.startsWith('gridco.demo.r1.'));
  assert.deepEqual(ups, [entry.uploadId], 'one upload id for the round');
  const held = gw.uploads.get(entry.uploadId!)!;
  assert.ok(held.complete);
  assert.equal(held.header.numExamples, 24);
  assert.equal(held.header.sha256, entry.sha256);
  const starts = gw.uploadStarts.filter((s) => s.uploadId === entry.uploadId);
  assert.equal(starts[starts.length - 1]!.firstOffset, 1024, 'resumed from the bytes the gateway held');
  assert.equal(second.state.get('demo', 1, 1)?.status, 'done');
  assert.ok(!existsSync(join(work, `${entry.updateFile!}.bin`)), 'the saved update is removed once done');
  // Only tensors of the modalities this company has (text, sensor) and the shared ones.
  const names = held.header.layout!.tensors.map((t) => t.name);
  assert.ok(names.some((n) => n.startsWith('text.')) && names.some((n) => n.startsWith('sensor.')) && names.includes('head.lora_A'));
  assert.ok(!names.some((n) => n.startsWith('image.')));

  // The same event again (a redelivery or a catch-up) does nothing.
  const before = gw.uploadStarts.length;
  const out3 = await second.handleEvent(opened(1));
  assert.deepEqual(out3, { status: 'skipped', reason: 'already done' });
  assert.equal(gw.uploadStarts.length, before);

  // A later attempt of the same round (the platform retried it) is a new collection.
  const out4 = await second.handleEvent(opened(1, 2));
  assert.equal((out4 as { status: string }).status, 'uploaded');
  second.close();
});

test('the same seed trains the same update; rounds the tenant is not selected for are skipped', async () => {
  const a = newAgent(mkdtempSync(join(tmpdir(), 'fedmm-agent-work-')));
  const b = newAgent(mkdtempSync(join(tmpdir(), 'fedmm-agent-work-')));
  await a.handleEvent(opened(5));
  await b.handleEvent(opened(5));
  assert.equal(a.state.get('demo', 5, 1)?.sha256, b.state.get('demo', 5, 1)?.sha256);
  const notMine = epb.RoundEvent.fromPartial({ ...opened(6), event: { $case: 'opened', value: { selected: ['other'], inputVersionId: 'adapters-0', attempt: 1 } } });
  assert.deepEqual(await a.handleEvent(notMine), { status: 'skipped', reason: 'not selected' });
  a.close();
  b.close();
});

test('a round whose deadline passed is recorded as missed without training', async () => {
  const a = newAgent(mkdtempSync(join(tmpdir(), 'fedmm-agent-work-')));
  const late = epb.RoundEvent.fromPartial({ taskId: 'demo', round: 7, event: { $case: 'opened', value: { selected: ['gridco'], inputVersionId: 'adapters-0', deadlineUnixMs: Date.now() - 1, attempt: 1 } } });
  const out = await a.handleEvent(late);
  assert.equal((out as { status: string }).status, 'missed');
  assert.equal(a.state.get('demo', 7, 1)?.status, 'missed');
  a.close();
});

test('evaluateVersion reports the shared and the personalized accuracy on the local test set', async () => {
  const a = newAgent(mkdtempSync(join(tmpdir(), 'fedmm-agent-work-')));
  const ev = await a.evaluateVersion('adapters-0', undefined, { epochs: 3, lr: 0.02 });
  assert.equal(ev.shared.samples, 12);
  assert.ok(ev.personalized, 'personalized figures present');
  assert.ok(ev.personalized.accuracy >= 0 && ev.personalized.accuracy <= 1);
  assert.deepEqual(Object.keys(ev.shared.perClass), CLASSES);
  assert.ok(existsSync(join(a.config.workDir, 'evaluation.json')));
  assert.ok(existsSync(join(a.config.workDir, 'personal-adapter.safetensors')));
  a.close();
});

test('run subscribes to the tasks that exist, waits for a missing one without holding them up, and adds it once it exists', { timeout: 10_000 }, async () => {
  gw.missingTasks.add('later');
  const seen = gw.subscriptions.length;
  const a = newAgent(mkdtempSync(join(tmpdir(), 'fedmm-agent-work-')), ['later', 'demo']);
  const ac = new AbortController();
  const running = a.run(ac.signal);
  try {
    await waitFor(async () => gw.subscriptions.slice(seen).some((s) => s.join() === 'demo'), { timeoutMs: 5000, intervalMs: 10, what: 'a subscription to the existing task' });
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!gw.subscriptions.slice(seen).some((s) => s.includes('later')), 'the missing task was never named in a subscription');
    gw.missingTasks.delete('later');
    await waitFor(async () => gw.subscriptions.slice(seen).some((s) => [...s].sort().join() === 'demo,later'), { timeoutMs: 5000, intervalMs: 10, what: 'a subscription with the created task' });
  } finally {
    ac.abort();
    await running;
  }
});

test('run stops with PERMISSION_DENIED and what to do for a task the tenant is not a member of', { timeout: 10_000 }, async () => {
  gw.foreignTasks.add('theirs');
  try {
    const a = newAgent(mkdtempSync(join(tmpdir(), 'fedmm-agent-work-')), ['demo', 'theirs']);
    await assert.rejects(a.run(new AbortController().signal), (e: unknown) => e instanceof FedmmError && e.code === 'PERMISSION_DENIED' && /not a member of task theirs.*waiting will not help.*remove --task theirs/.test(e.message));
  } finally {
    gw.foreignTasks.delete('theirs');
  }
});
