// The platform in one process on real Kafka and Redis: registry, aggregator (coordinator and an
// in-process worker) and the gateway over mutual TLS, the way `fedmm demo` composes it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, FedmmError, waitFor } from '@fedmm/core';
import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';
import { KafkaBus, Topics } from '@fedmm/bus';
import { RedisStore, type Store } from '@fedmm/store';
import { aggregator as apb, gateway as gpb, task as tpb } from '@fedmm/proto';
import { clientCredentials, initPkiDir, readClientTlsFiles, PkiFiles } from '@fedmm/pki';
import { createRpcClient, hostService, type HostedService, type RpcClient } from '@fedmm/service-kit';
import { tracedStore } from '@fedmm/telemetry';
import { registryModule } from '@fedmm/registry-service';
import { aggregatorModule, setAggregatorPeers } from '@fedmm/aggregator-service';
import { privacyModule, PrivacyClient } from '@fedmm/privacy-service';
import { valuationModule, ValuationClient, PlatformAuditLog } from '@fedmm/valuation-service';
import { gatewayModule } from '@fedmm/gateway-service';
import { kafkaBrokers, redisUrl, uniqueId } from '../support/env.js';
import { uploadVersion, type NamedArrays } from '../support/models.js';

export const TENANTS = ['acme', 'globex', 'initech'];

/** The adapter layout of the test model: two tensors over a few shards. */
export const LAYOUT = [
  { name: 'enc.image.lora_A', shape: [16, 32], modality: 'image' },
  { name: 'head.lora_B', shape: [40, 10] },
];
export const SHARD_ELEMENTS = 256;

export interface Platform {
  bus: KafkaBus;
  store: Store;
  registry: HostedService;
  privacy?: HostedService;
  valuation?: HostedService;
  aggregator: HostedService;
  gateway: HostedService;
  coordinator: RpcClient<typeof apb.AggregatorServiceService>;
  baseVersion: string;
  agent(tenant: string): RpcClient<typeof gpb.GatewayServiceService>;
  /** Creates a task over every tenant and opens its first round. */
  openTask(opts?: Partial<tpb.Task>): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Commits the end of fedmm.updates for a new worker group, so its workers skip what other suites
 * left on the shared broker, as they would on a cluster of their own.
 */
export async function startGroupAtEnd(bus: KafkaBus, groupId: string): Promise<void> {
  await bus.ensureTopic(Topics.updates, { partitions: 8, maxMessageBytes: 2 * 1024 * 1024 });
  const ends = await bus.endOffsets(Topics.updates);
  const admin = new Kafka({ brokers: kafkaBrokers, clientId: 'observability-tests-admin', logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.setOffsets({ groupId, topic: Topics.updates, partitions: ends.map((e) => ({ partition: e.partition, offset: e.offset })) });
  } finally {
    await admin.disconnect();
  }
}

/**
 * Starts the platform; call after telemetry started, so its instruments are live. `redisDb` keeps
 * the coordinator's leader lease apart from other suites running at the same time.
 */
export async function startPlatform(redisDb: number, opts: { withPeers?: boolean } = {}): Promise<Platform> {
  const root = mkdtempSync(join(tmpdir(), 'fedmm-obs-'));
  const pkiDir = join(root, 'pki');
  await initPkiDir(pkiDir, { tenants: TENANTS });
  const log = createLogger({ test: 'observability' }, 'error');
  const bus = new KafkaBus({ brokers: kafkaBrokers, clientId: 'observability-tests', sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, logger: log });
  const dbUrl = `${redisUrl.replace(/\/\d+$/, '')}/${redisDb}`;
  // The database is this suite's own: leftovers of an earlier run (tasks, a lease) would interfere.
  const admin = new Redis(dbUrl);
  await admin.flushdb();
  admin.disconnect();
  const redis = new RedisStore(dbUrl);
  // What createStore does for a service that opens its own Redis connection.
  const store = tracedStore(redis);
  const common = {
    FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_GRPC_PORT: '0', FEDMM_DATA_DIR: join(root, 'data'), FEDMM_SHUTDOWN_GRACE_MS: '500',
    FEDMM_SHARD_ELEMENTS: String(SHARD_ELEMENTS), FEDMM_AGGREGATOR_LEASE_MS: '5000', FEDMM_AGGREGATOR_TICK_MS: '100',
    FEDMM_AGGREGATOR_WORKER_GROUP: uniqueId('obs-workers'),
  };
  const shared = { bus, store, log };
  await startGroupAtEnd(bus, common.FEDMM_AGGREGATOR_WORKER_GROUP);
  const registry = await hostService(registryModule, { ...common }, shared);
  let privacy: HostedService | undefined;
  let valuation: HostedService | undefined;
  if (opts.withPeers) {
    const valuationGroup = uniqueId('obs-valuation');
    await startGroupAtEnd(bus, valuationGroup);
    privacy = await hostService(privacyModule, { ...common }, shared);
    valuation = await hostService(valuationModule, { ...common, FEDMM_REGISTRY_ADDR: registry.address, FEDMM_VALUATION_GROUP: valuationGroup, FEDMM_VALUATION_UPDATE_WAIT_MS: '5000' }, shared);
    const audit = new PlatformAuditLog({ store, bus });
    // The coordinator's peers: privacy as the fedmm binary wires it, plus valuation and the audit trail.
    setAggregatorPeers((_cfg, addr) => ({ privacy: new PrivacyClient(addr.privacy), valuation: new ValuationClient(addr.valuation), audit: { append: async (...a) => { await audit.append(...a); } } }));
  }
  const peerAddrs = { FEDMM_REGISTRY_ADDR: registry.address, ...(privacy ? { FEDMM_PRIVACY_ADDR: privacy.address } : {}), ...(valuation ? { FEDMM_VALUATION_ADDR: valuation.address } : {}) };
  const aggregator = await hostService(aggregatorModule, { ...common, ...peerAddrs, FEDMM_AGGREGATOR_USE_PRIVACY: String(!!privacy), FEDMM_AGGREGATOR_USE_VALUATION: String(!!valuation) }, shared);
  const gateway = await hostService(gatewayModule, {
    ...common,
    FEDMM_TLS_CERT: join(pkiDir, PkiFiles.serverCert), FEDMM_TLS_KEY: join(pkiDir, PkiFiles.serverKey), FEDMM_TLS_CA: join(pkiDir, PkiFiles.caCert),
    FEDMM_AGGREGATOR_ADDR: aggregator.address, FEDMM_REGISTRY_ADDR: registry.address,
    // What the chart sets: kubelet probes reach a plaintext health-only port.
    FEDMM_HEALTH_PORT: '0',
  }, shared);
  const coordinator = createRpcClient(apb.AggregatorServiceService, aggregator.address);
  const arrays: NamedArrays = new Map(LAYOUT.map((t) => [t.name, { shape: t.shape, data: new Float32Array(t.shape.reduce((a, b) => a * b, 1)), ...(t.modality ? { modality: t.modality } : {}) }]));
  const baseVersion = await uploadVersion(registry.address, uniqueId('obs-model'), arrays);
  const agents: RpcClient<typeof gpb.GatewayServiceService>[] = [];
  return {
    bus, store, registry, ...(privacy ? { privacy } : {}), ...(valuation ? { valuation } : {}), aggregator, gateway, coordinator, baseVersion,
    agent(tenant) {
      const c = createRpcClient(gpb.GatewayServiceService, `localhost:${gateway.port}`, clientCredentials(readClientTlsFiles(pkiDir, tenant)));
      agents.push(c);
      return c;
    },
    async openTask(opts = {}) {
      const taskId = uniqueId('obs');
      const task = tpb.Task.fromPartial({ taskId, modelId: baseVersion.split('@')[0]!, baseVersionId: baseVersion, members: TENANTS, rounds: 1, strategy: { name: 'fedavg' }, roundDeadlineSeconds: 60, ...opts });
      // The coordinator takes its lease a moment after it starts (and may lose it on a loaded machine).
      const whileLeading = (call: () => Promise<unknown>, what: string): Promise<unknown> => waitFor(async () => call().then(() => true, (e: Error) => {
        if (/not the leader|lost its lease/.test(e.message)) return false;
        throw e;
      }), { timeoutMs: 20_000, what });
      await whileLeading(() => coordinator.createTask({ task }).catch((e: unknown) => {
        // A retry after a lost lease finds the task the first attempt wrote.
        if (!(e instanceof FedmmError && e.code === 'ALREADY_EXISTS')) throw e;
      }), 'the coordinator to create the task');
      await whileLeading(async () => {
        const cur = (await coordinator.getTask({ taskId })).task!;
        if (cur.currentRound === 0) await coordinator.startRound({ taskId });
      }, 'the coordinator to open round 1');
      return taskId;
    },
    async stop() {
      for (const a of agents) a.close();
      coordinator.close();
      await gateway.stop();
      await aggregator.stop();
      await valuation?.stop();
      await privacy?.stop();
      await registry.stop();
      await bus.close();
      await store.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
