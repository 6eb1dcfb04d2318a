// The platform in one process for secure-aggregation rounds: registry, aggregator (coordinator and
// an in-process shard worker) and the gateway over mutual TLS, on real Kafka and Redis. Clients are
// the agent library's GatewayConnection and SecAggSession, driven stage by stage so that a test can
// make any client drop at any stage.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, FedmmError, waitFor } from '@fedmm/core';
import { Redis } from 'ioredis';
import { KafkaBus } from '@fedmm/bus';
import { RedisStore } from '@fedmm/store';
import { aggregator as apb, task as tpb } from '@fedmm/proto';
import { initPkiDir, readClientTlsFiles, PkiFiles } from '@fedmm/pki';
import { createRpcClient, hostService, type HostedService, type RpcClient } from '@fedmm/service-kit';
import { registryModule } from '@fedmm/registry-service';
import { aggregatorModule } from '@fedmm/aggregator-service';
import { gatewayModule } from '@fedmm/gateway-service';
import { GatewayConnection, SecAggSession, maskedPayload } from '@fedmm/agent';
import { createLayout, type TensorLayout } from '@fedmm/tensor';
import { kafkaBrokers, redisUrl, uniqueId } from '../support/env.js';
import { uploadVersion, type NamedArrays } from '../support/models.js';
import { startGroupAtEnd } from '../observability/platform.js';

export const TENANTS = ['acme', 'globex', 'hooli', 'initech', 'umbrella'];
/** 4096 coordinates over 3 shards of the flattened layout. */
export const LAYOUT = [
  { name: 'enc.image.lora_A', shape: [64, 48], modality: 'image' },
  { name: 'head.lora_B', shape: [1024] },
];
export const SHARD_ELEMENTS = 1500;

/** Where a client stops taking part. */
export type DropAt = 'never' | 'before-setup' | 'after-keys' | 'after-upload';

export interface SecurePlatform {
  bus: KafkaBus;
  store: RedisStore;
  coordinator: RpcClient<typeof apb.AggregatorServiceService>;
  registry: HostedService;
  baseVersion: string;
  layout: TensorLayout;
  workerGroup: string;
  /** Creates a secure task over `members` (one round unless told) and opens its round 1; later rounds open as each publishes. */
  openTask(members: string[], privacy: Partial<tpb.PrivacyConfig>, deadlineSeconds: number, rounds?: number): Promise<string>;
  /** Plays one client of the task's round (1 unless told, its current attempt) until `dropAt`. */
  runClient(taskId: string, tenant: string, update: Float32Array, clipNorm: number, dropAt?: DropAt, round?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startSecurePlatform(redisDb: number): Promise<SecurePlatform> {
  const root = mkdtempSync(join(tmpdir(), 'fedmm-secagg-'));
  const pkiDir = join(root, 'pki');
  await initPkiDir(pkiDir, { tenants: TENANTS });
  const log = createLogger({ test: 'secagg' }, 'error');
  const bus = new KafkaBus({ brokers: kafkaBrokers, clientId: 'secagg-tests', sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, logger: log });
  const dbUrl = `${redisUrl.replace(/\/\d+$/, '')}/${redisDb}`;
  const admin = new Redis(dbUrl);
  await admin.flushdb();
  admin.disconnect();
  const store = new RedisStore(dbUrl);
  const workerGroup = uniqueId('secagg-workers');
  const common = {
    FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_GRPC_PORT: '0', FEDMM_DATA_DIR: join(root, 'data'), FEDMM_SHUTDOWN_GRACE_MS: '500',
    FEDMM_SHARD_ELEMENTS: String(SHARD_ELEMENTS), FEDMM_AGGREGATOR_LEASE_MS: '5000', FEDMM_AGGREGATOR_TICK_MS: '100',
    FEDMM_AGGREGATOR_WORKER_GROUP: workerGroup, FEDMM_ROUND_MAX_ATTEMPTS: '1',
  };
  const shared = { bus, store, log };
  await startGroupAtEnd(bus, workerGroup);
  const registry = await hostService(registryModule, { ...common }, shared);
  const aggregator = await hostService(aggregatorModule, { ...common, FEDMM_REGISTRY_ADDR: registry.address }, shared);
  const gateway = await hostService(gatewayModule, {
    ...common,
    FEDMM_TLS_CERT: join(pkiDir, PkiFiles.serverCert), FEDMM_TLS_KEY: join(pkiDir, PkiFiles.serverKey), FEDMM_TLS_CA: join(pkiDir, PkiFiles.caCert),
    FEDMM_AGGREGATOR_ADDR: aggregator.address, FEDMM_REGISTRY_ADDR: registry.address,
  }, shared);
  const coordinator = createRpcClient(apb.AggregatorServiceService, aggregator.address);
  const arrays: NamedArrays = new Map(LAYOUT.map((t) => [t.name, { shape: t.shape, data: new Float32Array(t.shape.reduce((a, b) => a * b, 1)), ...(t.modality ? { modality: t.modality } : {}) }]));
  const baseVersion = await uploadVersion(registry.address, uniqueId('secagg-model'), arrays);
  const layout = createLayout(LAYOUT.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape, ...(t.modality ? { modality: t.modality } : {}) })));
  const connections: GatewayConnection[] = [];
  const whileLeading = (call: () => Promise<unknown>, what: string): Promise<unknown> => waitFor(async () => call().then(() => true, (e: Error) => {
    if (/not the leader|lost its lease/.test(e.message)) return false;
    throw e;
  }), { timeoutMs: 20_000, what });

  return {
    bus, store, coordinator, registry, baseVersion, layout, workerGroup,
    async openTask(members, privacy, deadlineSeconds, rounds = 1) {
      const taskId = uniqueId('sec');
      const task = tpb.Task.fromPartial({
        taskId, modelId: baseVersion.split('@')[0]!, baseVersionId: baseVersion, members, rounds, strategy: { name: 'fedavg' },
        roundDeadlineSeconds: deadlineSeconds, privacy: { secureAggregation: true, ...privacy },
      });
      await whileLeading(() => coordinator.createTask({ task }).catch((e: unknown) => {
        if (!(e instanceof FedmmError && e.code === 'ALREADY_EXISTS')) throw e;
      }), 'the coordinator to create the task');
      await whileLeading(async () => {
        if ((await coordinator.getTask({ taskId })).task!.currentRound === 0) await coordinator.startRound({ taskId });
      }, 'the coordinator to open round 1');
      return taskId;
    },
    async runClient(taskId, tenant, update, clipNorm, dropAt = 'never', number = 1) {
      if (dropAt === 'before-setup') return;
      const round = (await coordinator.getRound({ taskId, number })).round!;
      const connection = new GatewayConnection({ address: `localhost:${gateway.port}`, tls: readClientTlsFiles(pkiDir, tenant), log, backoff: { baseMs: 100, capMs: 1000, maxAttempts: 5 } });
      connections.push(connection);
      const deadline = round.deadline ? round.deadline.seconds * 1000 + Math.floor(round.deadline.nanos / 1e6) : 0;
      const session = new SecAggSession({ connection, taskId, round: number, attempt: round.attempt, tenant, deadlineUnixMs: deadline, log, pollSeconds: 5 });
      await session.handshake();
      if (dropAt === 'after-keys') return;
      const words = await session.mask(update, clipNorm);
      const payload = maskedPayload(layout, words);
      await connection.uploadUpdate({ taskId, round: number, uploadId: `${tenant}-${taskId}-${number}`, update: payload, numExamples: 10 });
      if (dropAt === 'after-upload') return;
      await session.unmask();
    },
    async stop() {
      for (const c of connections) c.close();
      coordinator.close();
      await gateway.stop();
      await aggregator.stop();
      await registry.stop();
      await bus.close();
      await store.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
