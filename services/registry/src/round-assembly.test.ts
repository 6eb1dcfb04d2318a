import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomUUID } from 'node:crypto';
import { createLogger, isFedmmError, waitFor } from '@fedmm/core';
import { lineage as lineagePb, registry as pb, tensor as tpb } from '@fedmm/proto';
import { createRpcClient, hostService, type HostedService, type RpcClient } from '@fedmm/service-kit';
import { SqliteStore, type Store } from '@fedmm/store';
import { crc32c, makeTensor, parseSafetensors, serializeSafetensors, sha256Hex, type Tensor } from '@fedmm/tensor';
import { registryModule } from './main.js';

const log = createLogger({}, 'error');
type Client = RpcClient<typeof pb.RegistryServiceService>;

// Names sort as a < b < c: the flattened layout and the safetensors data order.
const TENSORS = [
  { name: 'c', shape: [7] },
  { name: 'a', shape: [3, 4], modality: 'image' },
  { name: 'b', shape: [5] },
];
const TOTAL = 12 + 5 + 7;
const SHARD = 10; // shards [0,10) [10,20) [20,24): each crosses a tensor boundary

function values(seed: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  let x = seed;
  for (const t of TENSORS) out.set(t.name, Float32Array.from({ length: t.shape.reduce((a, b) => a * b, 1) }, () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5));
  return out;
}

/** The flattened values (tensors sorted by name), as the aggregator's shards cover them. */
function flat(v: Map<string, Float32Array>): Float32Array {
  const names = [...v.keys()].sort();
  const out = new Float32Array(TOTAL);
  let off = 0;
  for (const n of names) {
    out.set(v.get(n)!, off);
    off += v.get(n)!.length;
  }
  return out;
}

function safetensorsOf(v: Map<string, Float32Array>, metadata: Record<string, string>): Uint8Array {
  const named = new Map<string, Tensor>();
  for (const t of TENSORS) named.set(t.name, makeTensor('F32', t.shape, v.get(t.name)!));
  return serializeSafetensors(named, metadata);
}

async function upload(client: Client, modelId: string, bytes: Uint8Array, parent = '', lineage?: lineagePb.Lineage, metrics: Record<string, number> = {}): Promise<pb.ModelVersion> {
  const res = await new Promise<pb.UploadVersionResponse>((resolve, reject) => {
    const call = client.uploadVersion({}, (err, r) => (err ? reject(err) : resolve(r!)));
    call.write({ payload: { $case: 'header', value: pb.UploadVersionHeader.fromPartial({
      modelId, kind: parent ? pb.ModelKind.MODEL_KIND_ADAPTER : pb.ModelKind.MODEL_KIND_BASE, parentVersionId: parent,
      ...(lineage ? { lineage } : {}), metrics, artifactSha256: sha256Hex(bytes), artifactSize: bytes.byteLength,
    }) } });
    call.write({ payload: { $case: 'chunk', value: { offset: 0, data: Buffer.from(bytes), crc32c: crc32c(bytes) } } });
    call.end();
  });
  return res.version!;
}

interface ShardPut { modelId: string; taskId: string; round: number; attempt: number; shard: number; elementOffset: number; values: Float32Array; sha256?: string; chunkBytes?: number }

function putShard(client: Client, s: ShardPut): Promise<pb.PutRoundShardResponse> {
  const bytes = Buffer.from(s.values.buffer, s.values.byteOffset, s.values.byteLength);
  return new Promise((resolve, reject) => {
    const call = client.putRoundShard({}, (err, r) => (err ? reject(err) : resolve(r!)));
    call.write({ payload: { $case: 'header', value: {
      modelId: s.modelId, round: { taskId: s.taskId, round: s.round, attempt: s.attempt }, shard: s.shard,
      elementOffset: s.elementOffset, elementCount: s.values.length, contributors: 2, sha256: s.sha256 ?? sha256Hex(bytes),
    } } });
    const step = s.chunkBytes ?? 1 << 20;
    for (let off = 0; off < bytes.byteLength; off += step) {
      const data = bytes.subarray(off, Math.min(off + step, bytes.byteLength));
      call.write({ payload: { $case: 'chunk', value: { offset: off, data, crc32c: crc32c(data) } } });
    }
    call.end();
  });
}

/** Matches a FedmmError of this code whose message matches `message`. */
const failsWith = (code: string, message = /./) => (e: unknown): boolean => isFedmmError(e) && e.code === code && message.test(e.message);

const layoutPb = (): tpb.TensorLayout => ({ fingerprint: '', tensors: TENSORS.map((t) => ({ name: t.name, dtype: tpb.DType.D_TYPE_F32, shape: t.shape, scale: 0, modality: t.modality ?? '' })) });

describe('registry: round shards staged and assembled into a version', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedmm-registry-rounds-'));
  const stagingRoot = join(dir, 'blobs', 'rounds');
  let store: Store;
  let hosted: HostedService;
  let client: Client;
  let modelId: string;
  let parent: pb.ModelVersion;

  before(async () => {
    store = new SqliteStore(join(dir, 'registry.db'));
    hosted = await hostService(registryModule, { ...process.env, FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_GRPC_PORT: '0', FEDMM_BUS: 'embedded', FEDMM_DATA_DIR: dir }, { store, log });
    client = createRpcClient(pb.RegistryServiceService, hosted.address);
    modelId = `m-${randomUUID().slice(0, 8)}`;
    await client.createModel({ modelId, description: 'rounds', configJson: '{}' });
    // The parent carries adapter settings its children inherit, and round settings they replace.
    parent = await upload(client, modelId, safetensorsOf(values(1), { 'lora.rank': '4', 'fedmm.round': '0', 'fedmm.task': 'old', 'fedmm.modality.a': 'image' }));
  });
  after(async () => {
    client.close();
    await hosted.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const taskOf = (): string => `t-${randomUUID().slice(0, 8)}`;
  const putAll = async (taskId: string, round: number, attempt: number, f: Float32Array, opts: { skip?: number[] } = {}): Promise<void> => {
    for (let s = 0, off = 0; off < f.length; s++, off += SHARD) {
      if (opts.skip?.includes(s)) continue;
      await putShard(client, { modelId, taskId, round, attempt, shard: s, elementOffset: off, values: f.subarray(off, Math.min(off + SHARD, f.length)), chunkBytes: 16 });
    }
  };
  const assemble = (taskId: string, round: number, attempt: number, numShards = 3): Promise<pb.AssembleRoundVersionResponse> => client.assembleRoundVersion({
    modelId, parentVersionId: parent.versionId, round: { taskId, round, attempt }, numShards, layout: layoutPb(),
    lineage: lineagePb.Lineage.fromPartial({ taskId, round, contributingClients: ['acme', 'globex'], strategy: 'fedavg', parentVersionId: parent.versionId }),
    metrics: { clients: 2, examples: 300 },
  });
  const stagedParts = (): string[] => (existsSync(stagingRoot) ? readdirSync(stagingRoot, { recursive: true }) as string[] : []).filter((f) => f.endsWith('.part') && !f.startsWith('.tmp'));

  test('the assembled version is byte for byte the UploadVersion of the same tensors, with lineage and metrics; the parts are gone', async () => {
    const taskId = taskOf();
    const v = values(7);
    await putAll(taskId, 1, 1, flat(v));
    assert.equal(stagedParts().length, 3);
    const res = await assemble(taskId, 1, 1);
    assert.equal(res.alreadyAssembled, false);
    const got = res.version!;
    const expected = safetensorsOf(v, { 'lora.rank': '4', 'fedmm.task': taskId, 'fedmm.round': '1', 'fedmm.modality.a': 'image' });
    assert.equal(got.artifactSha256, sha256Hex(expected), 'same tensors and metadata give the same sha256 as an upload');
    assert.equal(got.artifactSize, expected.byteLength);
    const uploaded = await upload(client, modelId, expected, parent.versionId);
    assert.equal(uploaded.artifactSha256, got.artifactSha256);
    assert.deepEqual(got.layout, uploaded.layout);
    assert.equal(got.kind, pb.ModelKind.MODEL_KIND_ADAPTER);
    assert.equal(got.parentVersionId, parent.versionId);
    assert.deepEqual(got.lineage?.contributingClients, ['acme', 'globex']);
    assert.equal(got.lineage?.round, 1);
    assert.deepEqual(got.metrics, { clients: 2, examples: 300 });
    // Downloaded, the tensors are the shards' values.
    const parts: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const s = client.downloadVersion({ versionId: got.versionId, offset: 0, tenant: '', chunkSize: 0 });
      s.on('data', (m: pb.DownloadVersionResponse) => { if (m.chunk) parts.push(Buffer.from(m.chunk.data)); });
      s.on('error', reject);
      s.on('end', resolve);
    });
    const parsed = parseSafetensors(Buffer.concat(parts));
    for (const [name, data] of v) assert.deepEqual(parsed.tensors.get(name)!.data, data);
    assert.deepEqual(stagedParts(), [], 'the staged parts are deleted once assembled');
  });

  test('assembly is idempotent by (task, round, attempt): a second call returns the same version', async () => {
    const taskId = taskOf();
    await putAll(taskId, 2, 1, flat(values(11)));
    const first = await assemble(taskId, 2, 1);
    const before = (await client.listVersions({ modelId, tenant: '' })).versions.length;
    const again = await assemble(taskId, 2, 1);
    assert.equal(again.alreadyAssembled, true);
    assert.equal(again.version!.versionId, first.version!.versionId);
    assert.equal((await client.listVersions({ modelId, tenant: '' })).versions.length, before, 'no second version');
    // A late shard of an assembled attempt is refused: nothing would ever read it.
    await assert.rejects(putShard(client, { modelId, taskId, round: 2, attempt: 1, shard: 0, elementOffset: 0, values: new Float32Array(SHARD) }), failsWith('FAILED_PRECONDITION', /already version/));
  });

  test('missing shards are FAILED_PRECONDITION naming them; nothing is recorded', async () => {
    const taskId = taskOf();
    await putAll(taskId, 1, 1, flat(values(3)), { skip: [0, 2] });
    const before = (await client.listVersions({ modelId, tenant: '' })).versions.length;
    await assert.rejects(assemble(taskId, 1, 1), failsWith('FAILED_PRECONDITION', /no staged shard 0, 2 \(of 3\)/));
    assert.equal((await client.listVersions({ modelId, tenant: '' })).versions.length, before);
    // Shards that do not tile the layout are refused too.
    await assert.rejects(assemble(taskId, 1, 1, 1), failsWith('FAILED_PRECONDITION'));
  });

  test('a shard put twice with the same bytes is accepted; other bytes for it are ALREADY_EXISTS', async () => {
    const taskId = taskOf();
    const f = flat(values(5));
    const s0 = { modelId, taskId, round: 1, attempt: 1, shard: 0, elementOffset: 0, values: f.subarray(0, SHARD) };
    assert.equal((await putShard(client, s0)).alreadyStaged, false);
    assert.equal((await putShard(client, { ...s0, chunkBytes: 8 })).alreadyStaged, true, 'a replayed worker puts the same bytes');
    const other = Float32Array.from(s0.values, (x) => x + 1);
    await assert.rejects(putShard(client, { ...s0, values: other }), failsWith('ALREADY_EXISTS', /already staged with other content/));
    // Another attempt of the round is another place.
    assert.equal((await putShard(client, { ...s0, attempt: 2, values: other })).alreadyStaged, false);
    assert.equal((await client.discardRoundShards({ round: { taskId, round: 1, attempt: 1 } })).removed, 1);
    assert.equal((await client.discardRoundShards({ round: { taskId, round: 1, attempt: 2 } })).removed, 1);
    assert.deepEqual(stagedParts().filter((p) => p.startsWith(taskId)), []);
  });

  test('a put cut mid-stream, or with bytes that fail their sha256, leaves no staged part', async () => {
    const taskId = taskOf();
    const f = new Float32Array(4096).fill(0.25);
    const bytes = Buffer.from(f.buffer);
    const call = client.putRoundShard({}, () => undefined);
    call.write({ payload: { $case: 'header', value: { modelId, round: { taskId, round: 1, attempt: 1 }, shard: 0, elementOffset: 0, elementCount: f.length, contributors: 1, sha256: sha256Hex(bytes) } } });
    const half = bytes.subarray(0, 8192);
    call.write({ payload: { $case: 'chunk', value: { offset: 0, data: half, crc32c: crc32c(half) } } });
    // The registry has the first half in a temporary file when the worker dies.
    await waitFor(async () => readdirSync(join(stagingRoot, '.tmp')).length > 0, { timeoutMs: 10_000, what: 'the first chunk to reach the registry' });
    call.cancel();
    await waitFor(async () => readdirSync(join(stagingRoot, '.tmp')).length === 0, { timeoutMs: 10_000, what: 'the temporary part to be removed' });
    assert.deepEqual(stagedParts().filter((p) => p.startsWith(taskId)), []);

    const wrong = createHash('sha256').update('not these bytes').digest('hex');
    await assert.rejects(putShard(client, { modelId, taskId, round: 1, attempt: 1, shard: 0, elementOffset: 0, values: f, sha256: wrong }), failsWith('DATA_LOSS'));
    assert.deepEqual(stagedParts().filter((p) => p.startsWith(taskId)), []);
    // Fewer bytes than announced fail the same way.
    await assert.rejects(new Promise((resolve, reject) => {
      const c = client.putRoundShard({}, (err, r) => (err ? reject(err) : resolve(r)));
      c.write({ payload: { $case: 'header', value: { modelId, round: { taskId, round: 1, attempt: 1 }, shard: 0, elementOffset: 0, elementCount: f.length, contributors: 1, sha256: sha256Hex(bytes) } } });
      c.write({ payload: { $case: 'chunk', value: { offset: 0, data: half, crc32c: crc32c(half) } } });
      c.end();
    }), failsWith('DATA_LOSS', /announced/));
    assert.deepEqual(readdirSync(join(stagingRoot, '.tmp')), []);
    assert.deepEqual(stagedParts().filter((p) => p.startsWith(taskId)), []);
  });

  test('garbage collection removes staged shards of rounds that have a version and keeps those of rounds in progress', async () => {
    const taskId = taskOf();
    const f = flat(values(9));
    await putAll(taskId, 1, 2, f);
    await assemble(taskId, 1, 2);
    // A stale worker of the failed first attempt stages a shard after the round was assembled.
    await putShard(client, { modelId, taskId, round: 1, attempt: 1, shard: 0, elementOffset: 0, values: f.subarray(0, SHARD) });
    await putShard(client, { modelId, taskId, round: 2, attempt: 1, shard: 0, elementOffset: 0, values: f.subarray(0, SHARD) });
    const dry = await client.collectGarbage({ dryRun: true });
    assert.deepEqual(dry.removedRoundAttempts.filter((a) => a.startsWith(taskId)), [`${taskId}/1/1`]);
    assert.equal(stagedParts().filter((p) => p.startsWith(taskId)).length, 2, 'a dry run removes nothing');
    const gc = await client.collectGarbage({ dryRun: false });
    assert.deepEqual(gc.removedRoundAttempts.filter((a) => a.startsWith(taskId)), [`${taskId}/1/1`]);
    assert.deepEqual(stagedParts().filter((p) => p.startsWith(taskId)), [join(taskId, '2', '1', '00000000.part')]);
  });

  test('a bad header is INVALID_ARGUMENT before any byte is stored', async () => {
    await assert.rejects(putShard(client, { modelId, taskId: '../etc', round: 1, attempt: 1, shard: 0, elementOffset: 0, values: new Float32Array(2) }), failsWith('INVALID_ARGUMENT', /task id/));
    await assert.rejects(putShard(client, { modelId, taskId: taskOf(), round: 0, attempt: 1, shard: 0, elementOffset: 0, values: new Float32Array(2) }), failsWith('INVALID_ARGUMENT', /round 0/));
    await assert.rejects(putShard(client, { modelId: 'no-such-model', taskId: taskOf(), round: 1, attempt: 1, shard: 0, elementOffset: 0, values: new Float32Array(2) }), failsWith('NOT_FOUND'));
  });
});
