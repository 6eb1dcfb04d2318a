// Gateway transport benchmark on loopback, everything real (mTLS gRPC, Kafka, Redis).
// Build first (npx tsc -b services/gateway services/registry), start Kafka and Redis
// (deploy/local/up.sh), then:  node bench/transport/gateway-bench.mjs [--quick]
// Prints:
//  - upload of a 512 MiB F32 update through the gateway into fedmm.updates (MB/s), next to a raw
//    TCP transfer of the same bytes and a no-op gRPC sink over the same mTLS credentials, and ratios;
//  - the gateway's peak RSS (VmHWM of the child process) after the 512 MiB and after a 2 GiB upload;
//  - download of a model artifact through the gateway against downloading it from the registry directly.
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { createLogger } from '@fedmm/core';
import { KafkaBus, Topics } from '@fedmm/bus';
import { RedisStore } from '@fedmm/store';
import { aggregator as apb, gateway as gpb, registry as rpb, task as tpb, tensor as tensorPb } from '@fedmm/proto';
import { PkiFiles, clientCredentials, initPkiDir, readClientTlsFiles, readServerTlsFiles, serverCredentials } from '@fedmm/pki';
import { createRpcClient, hostService, startGrpcServer } from '@fedmm/service-kit';
import { registryModule } from '@fedmm/registry-service';
import { crc32c } from '@fedmm/tensor';

const quick = process.argv.includes('--quick');
const MiB = 1024 * 1024;
const UPLOAD = (quick ? 128 : 512) * MiB;
const BIG = (quick ? 512 : 2048) * MiB;
const DOWNLOAD = (quick ? 64 : 256) * MiB;
const TENSOR_ELEMENTS = 4 * MiB; // 16 MiB of F32 per tensor
const brokers = (process.env.FEDMM_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const redisUrl = process.env.FEDMM_REDIS_URL ?? 'redis://127.0.0.1:6379';
const log = createLogger({ bench: 'transport' }, 'warn');

// One 1 MiB block of small finite F32 values; chunk i is the block with its first value set to i.
const block = new Float32Array(MiB / 4).map((_, i) => Math.sin(i) * 1e-3);
function chunkAt(i) {
  const b = Buffer.from(block.buffer.slice(0));
  b.writeFloatLE(i * 1e-6, 0);
  return b;
}
function shaOf(size) {
  const h = createHash('sha256');
  for (let i = 0; i < size / MiB; i++) h.update(chunkAt(i));
  return h.digest('hex');
}
const mbps = (bytes, ms) => (bytes / 1e6 / (ms / 1000)).toFixed(0);

// --- baselines -----------------------------------------------------------------------------
async function rawTcp(size) {
  const server = createServer((s) => s.on('data', () => undefined));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const done = new Promise((resolve) => server.once('connection', (s) => {
    let n = 0;
    s.on('data', (d) => { n += d.length; if (n >= size) resolve(); });
  }));
  const sock = connect(server.address().port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const t0 = performance.now();
  for (let i = 0; i < size / MiB; i++) if (!sock.write(chunkAt(i))) await new Promise((r) => sock.once('drain', r));
  await done;
  const ms = performance.now() - t0;
  sock.destroy();
  server.close();
  return ms;
}

// The sink runs on the services' own server setup (startGrpcServer: keepalive, message limits,
// widened HTTP/2 flow-control windows), so the ratio measures the gateway's work, not transport settings.
async function grpcSink(pkiDir, size, header) {
  const server = await startGrpcServer({
    name: 'sink', host: '127.0.0.1', port: 0, credentials: serverCredentials(readServerTlsFiles(pkiDir)), log: createLogger({ service: 'sink' }, 'warn'),
    services: [{
      name: 'fedmm.v1.GatewayService',
      definition: gpb.GatewayServiceService,
      implementation: {
        uploadUpdate: (call, cb) => {
          let n = 0;
          call.on('data', (m) => { if (m.payload?.$case === 'chunk') n += m.payload.value.data.length; });
          call.on('end', () => cb(null, { uploadId: 'sink', bytesReceived: n, complete: true, shards: 0 }));
        },
      },
    }],
  });
  const client = createRpcClient(gpb.GatewayServiceService, `localhost:${server.port}`, clientCredentials(readClientTlsFiles(pkiDir, 'acme')));
  const ms = await timedUpload(client, header, size);
  client.close();
  await server.shutdown(0);
  return ms;
}

// --- the coordinator double the gateway asks ------------------------------------------------
async function fakeAggregator(tasks) {
  const server = new Server();
  const no = (_, cb) => cb({ code: status.UNIMPLEMENTED, details: 'bench' });
  server.addService(apb.AggregatorServiceService, {
    createTask: no, listTasks: no, startRound: no, listRounds: no, cancelRound: no, getRound: no, recordTermsAcceptance: no,
    getTask: (call, cb) => cb(null, { task: tpb.Task.fromPartial({ taskId: call.request.taskId, members: ['acme'] }) }),
    getUploadPolicy: (call, cb) => {
      const n = tasks.get(call.request.taskId);
      if (!n) return cb({ code: status.NOT_FOUND, details: 'no task' });
      cb(null, { layout: layoutOf(n), maxUpdateNorm: 0, maxUpdateBytes: 0, shardElements: 0, secureAggregation: false, roundAttempt: 1 });
    },
    reportUpdateReceived: (_, cb) => cb(null, {}),
  });
  const port = await new Promise((res, rej) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return { address: `127.0.0.1:${port}`, stop: () => server.forceShutdown() };
}

function layoutOf(size) {
  const n = size / 4 / TENSOR_ELEMENTS;
  return tensorPb.TensorLayout.fromPartial({
    tensors: Array.from({ length: n }, (_, i) => ({ name: `layer${String(i).padStart(4, '0')}.lora`, dtype: tensorPb.DType.D_TYPE_F32, shape: [TENSOR_ELEMENTS / 1024, 1024] })),
  });
}

function headerFor(taskId, size) {
  return gpb.UploadHeader.fromPartial({ taskId, round: 1, uploadId: randomUUID(), layout: layoutOf(size), sha256: shaOf(size), size, numExamples: 1 });
}

function timedUpload(client, header, size) {
  return new Promise((resolve, reject) => {
    let t0;
    const call = client.uploadUpdate({}, (err, res) => {
      if (err) return reject(err);
      if (res.bytesReceived !== size) return reject(new Error(`only ${res.bytesReceived} bytes acknowledged`));
      resolve(performance.now() - t0);
    });
    const write = (m) => new Promise((r) => (call.write(m) ? r() : call.once('drain', r)));
    (async () => {
      t0 = performance.now();
      await write({ payload: { $case: 'header', value: header } });
      for (let i = 0; i < size / MiB; i++) {
        const data = chunkAt(i);
        await write({ payload: { $case: 'chunk', value: { offset: i * MiB, data, crc32c: crc32c(data) } } });
      }
      call.end();
    })().catch(reject);
  });
}

const hwmKiB = (pid) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

async function main() {
  const root = mkdtempSync(join(tmpdir(), 'fedmm-gw-bench-'));
  const pkiDir = join(root, 'pki');
  await initPkiDir(pkiDir, { tenants: ['acme'] });
  const bus = new KafkaBus({ brokers, clientId: 'gateway-bench', logger: log });
  await bus.ensureTopic(Topics.updates, { partitions: 3 });
  await bus.ensureTopic(Topics.roundEvents, { partitions: 1 });
  const store = new RedisStore(redisUrl);
  const tasks = new Map();
  const agg = await fakeAggregator(tasks);
  const registry = await hostService(registryModule, { FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_GRPC_PORT: '0', FEDMM_DATA_DIR: join(root, 'data') }, { bus, store, log });
  const here = fileURLToPath(new URL('.', import.meta.url));
  const child = spawn(process.execPath, [...(process.env.GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean), join(here, 'gateway-child.mjs')], {
    env: {
      ...process.env, FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_GRPC_PORT: '0', FEDMM_LOG_LEVEL: 'warn',
      FEDMM_TLS_CERT: join(pkiDir, PkiFiles.serverCert), FEDMM_TLS_KEY: join(pkiDir, PkiFiles.serverKey), FEDMM_TLS_CA: join(pkiDir, PkiFiles.caCert),
      FEDMM_AGGREGATOR_ADDR: agg.address, FEDMM_REGISTRY_ADDR: registry.address, FEDMM_KAFKA_BROKERS: brokers.join(','), FEDMM_REDIS_URL: redisUrl,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => { out += d; const m = /PORT (\d+)/.exec(out); if (m) resolve(Number(m[1])); });
    child.once('exit', (c) => reject(new Error(`gateway exited with ${c}`)));
  });
  const client = createRpcClient(gpb.GatewayServiceService, `localhost:${port}`, clientCredentials(readClientTlsFiles(pkiDir, 'acme')), { 'grpc-node.flow_control_window': 4 * MiB });
  const idle = rssKiB(child.pid);

  console.log(`gateway upload benchmark (loopback, mTLS, Kafka acks=all), ${UPLOAD / MiB} MiB F32 update in 1 MiB chunks`);
  const sinkHeader = headerFor('sink', UPLOAD);
  const tcpMs = await rawTcp(UPLOAD);
  const sinkMs = await grpcSink(pkiDir, UPLOAD, sinkHeader);
  const taskA = `bench-${randomUUID().slice(0, 8)}`;
  tasks.set(taskA, UPLOAD);
  const gwMs = await timedUpload(client, headerFor(taskA, UPLOAD), UPLOAD);
  const hwmSmall = hwmKiB(child.pid);
  console.log(`  raw TCP             ${mbps(UPLOAD, tcpMs).padStart(6)} MB/s`);
  console.log(`  no-op gRPC sink     ${mbps(UPLOAD, sinkMs).padStart(6)} MB/s`);
  console.log(`  gateway -> Kafka    ${mbps(UPLOAD, gwMs).padStart(6)} MB/s`);
  console.log(`  gateway / raw TCP   ${(tcpMs / gwMs).toFixed(3)}`);
  console.log(`  gateway / gRPC sink ${(sinkMs / gwMs).toFixed(3)}`);

  const taskB = `bench-${randomUUID().slice(0, 8)}`;
  tasks.set(taskB, BIG);
  const bigMs = await timedUpload(client, headerFor(taskB, BIG), BIG);
  const hwmBig = hwmKiB(child.pid);
  console.log(`gateway memory: idle RSS ${(idle / 1024).toFixed(0)} MiB; peak RSS after ${UPLOAD / MiB} MiB ${(hwmSmall / 1024).toFixed(0)} MiB, after ${BIG / MiB} MiB ${(hwmBig / 1024).toFixed(0)} MiB (${mbps(BIG, bigMs)} MB/s)`);

  // Download: an artifact in the registry, read through the gateway and straight from the registry.
  const reg = createRpcClient(rpb.RegistryServiceService, registry.address, undefined, { 'grpc-node.flow_control_window': 4 * MiB });
  const modelId = `bench-${Date.now()}`;
  await reg.createModel({ modelId, description: 'bench', configJson: '{}' });
  const n = DOWNLOAD / 4;
  const headerJson = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [n], data_offsets: [0, DOWNLOAD] } }));
  const pad = (8 - (headerJson.length % 8)) % 8;
  const hdr = Buffer.concat([headerJson, Buffer.alloc(pad, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(hdr.length));
  const pieces = [prefix, hdr];
  for (let i = 0; i < DOWNLOAD / MiB; i++) pieces.push(chunkAt(i));
  const artifact = Buffer.concat(pieces);
  pieces.length = 0;
  const sha = createHash('sha256').update(artifact).digest('hex');
  const version = await new Promise((resolve, reject) => {
    const call = reg.uploadVersion({}, (e, r) => (e ? reject(e) : resolve(r.version)));
    const write = (m) => new Promise((r) => (call.write(m) ? r() : call.once('drain', r)));
    (async () => {
      await write({ payload: { $case: 'header', value: rpb.UploadVersionHeader.fromPartial({ modelId, kind: rpb.ModelKind.MODEL_KIND_BASE, artifactSha256: sha, artifactSize: artifact.length }) } });
      for (let off = 0; off < artifact.length; off += MiB) {
        const data = artifact.subarray(off, off + MiB);
        await write({ payload: { $case: 'chunk', value: { offset: off, data, crc32c: crc32c(data) } } });
      }
      call.end();
    })().catch(reject);
  });
  const drain = async (stream) => {
    const t0 = performance.now();
    let bytes = 0;
    for await (const m of stream) bytes += m.chunk?.data.length ?? 0;
    if (bytes !== artifact.length) throw new Error(`downloaded ${bytes} of ${artifact.length} bytes`);
    return performance.now() - t0;
  };
  const directMs = await drain(reg.downloadVersion({ versionId: version.versionId, offset: 0, tenant: 'acme', chunkSize: 0 }));
  const viaMs = await drain(client.downloadModel({ versionId: version.versionId, offset: 0 }));
  console.log(`download of ${(artifact.length / MiB).toFixed(0)} MiB: registry direct ${mbps(artifact.length, directMs)} MB/s, through the gateway ${mbps(artifact.length, viaMs)} MB/s, ratio ${(directMs / viaMs).toFixed(3)}`);

  client.close();
  reg.close();
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  await registry.stop();
  agg.stop();
  await bus.close();
  await store.close();
  rmSync(root, { recursive: true, force: true });
}

await main();
