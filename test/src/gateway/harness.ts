// Runs the gateway over real gRPC with mutual TLS, real Kafka and Redis, the real registry, and
// a small coordinator double (real gRPC) answering the calls the gateway makes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Server, ServerCredentials, status, credentials as grpcCredentials, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { createLogger, FedmmError, waitFor } from '@fedmm/core';
import { KafkaBus, Topics, type BusMessage, type Consumer } from '@fedmm/bus';
import { RedisStore } from '@fedmm/store';
import { aggregator as apb, gateway as gpb, task as tpb, tensor as tensorPb } from '@fedmm/proto';
import { clientCredentials, initPkiDir, readClientTlsFiles, PkiFiles } from '@fedmm/pki';
import { createRpcClient, hostService, type HostedService, type RpcClient } from '@fedmm/service-kit';
import { gatewayModule } from '@fedmm/gateway-service';
import { registryModule } from '@fedmm/registry-service';

export const brokers = (process.env['FEDMM_KAFKA_BROKERS'] ?? '127.0.0.1:9092').split(',');
export const redisUrl = process.env['FEDMM_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
export const log = createLogger({ test: 'gateway' }, 'warn');

/** A task the coordinator double knows, with its current round and the policy it hands out. */
export interface FakeTask {
  task: tpb.Task;
  round: tpb.Round | undefined;
  policy: Omit<apb.GetUploadPolicyResponse, 'layout'> & { layout: tensorPb.TensorLayout };
  reports: apb.ReportUpdateReceivedRequest[];
  acceptances: apb.RecordTermsAcceptanceRequest[];
  /** Makes ReportUpdateReceived fail this many times with UNAVAILABLE. */
  failReports?: number;
}

const fail = (code: status, details: string): Partial<ServiceError> => ({ code, details });

/** The coordinator calls the gateway makes, over real gRPC, answering from `tasks`. */
export async function startFakeAggregator(tasks: Map<string, FakeTask>): Promise<{ address: string; stop(): Promise<void> }> {
  const server = new Server();
  const unimplemented = (_: unknown, cb: (e: Partial<ServiceError>) => void): void => cb(fail(status.UNIMPLEMENTED, 'not in the test double'));
  const impl: apb.AggregatorServiceServer = {
    createTask: unimplemented, listTasks: unimplemented, startRound: unimplemented, listRounds: unimplemented, cancelRound: unimplemented, updateTerms: unimplemented,
    getTask: (call, cb) => {
      const t = tasks.get(call.request.taskId);
      if (!t) return cb(fail(status.NOT_FOUND, `task ${call.request.taskId} does not exist`));
      cb(null, { task: t.task });
    },
    getRound: (call, cb) => {
      const t = tasks.get(call.request.taskId);
      if (!t?.round || t.round.number !== call.request.number) return cb(fail(status.NOT_FOUND, 'no such round'));
      cb(null, { round: t.round });
    },
    getUploadPolicy: (call, cb) => {
      const { taskId, round, tenant } = call.request;
      const t = tasks.get(taskId);
      if (!t) return cb(fail(status.NOT_FOUND, `task ${taskId} does not exist`));
      if (!t.round || t.round.number !== round || t.round.state !== tpb.RoundState.ROUND_STATE_OPEN) return cb(fail(status.FAILED_PRECONDITION, `round ${round} of task ${taskId} is not open`));
      if (!t.round.selected.includes(tenant)) return cb(fail(status.PERMISSION_DENIED, `tenant ${tenant} was not selected for round ${round}`));
      cb(null, t.policy);
    },
    reportUpdateReceived: (call, cb) => {
      const t = tasks.get(call.request.taskId);
      if (!t) return cb(fail(status.NOT_FOUND, 'no such task'));
      if (t.failReports && t.failReports > 0) {
        t.failReports--;
        return cb(fail(status.UNAVAILABLE, 'coordinator restarting'));
      }
      t.reports.push(call.request);
      cb(null, {});
    },
    recordTermsAcceptance: (call, cb) => {
      const t = tasks.get(call.request.taskId);
      if (!t) return cb(fail(status.NOT_FOUND, 'no such task'));
      t.acceptances.push(call.request);
      cb(null, {});
    },
  };
  server.addService(apb.AggregatorServiceService, impl);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { address: `127.0.0.1:${port}`, stop: () => new Promise((r) => server.tryShutdown(() => r())) };
}

export type GatewayClient = RpcClient<typeof gpb.GatewayServiceService>;

export interface Harness {
  pkiDir: string;
  otherPkiDir: string;
  bus: KafkaBus;
  store: RedisStore;
  tasks: Map<string, FakeTask>;
  gateway: HostedService;
  registry: HostedService;
  /** A client presenting `tenant`'s certificate (from another CA with `otherCa`). */
  client(tenant: string, opts?: { otherCa?: boolean }): GatewayClient;
  clientWith(creds: ChannelCredentials): GatewayClient;
  caPem(): string;
  /** Another gateway on the same store, bus, registry and coordinator (stopped by the caller). */
  startGateway(env?: Record<string, string>): Promise<HostedService>;
  /** A client of `gateway` presenting `tenant`'s certificate. */
  clientOf(gateway: HostedService, tenant: string): GatewayClient;
  stop(): Promise<void>;
}

export const TENANTS = ['acme', 'globex', 'initech', 'umbrella'] as const;

/** Starts Kafka/Redis adapters, the registry, the coordinator double and the gateway. */
export async function startHarness(env: Record<string, string> = {}): Promise<Harness> {
  const root = mkdtempSync(join(tmpdir(), 'fedmm-gw-'));
  const pkiDir = join(root, 'pki');
  const otherPkiDir = join(root, 'other-pki');
  await initPkiDir(pkiDir, { tenants: [...TENANTS] });
  await initPkiDir(otherPkiDir, { tenants: ['acme'], caCommonName: 'some other CA' });
  const bus = new KafkaBus({ brokers, clientId: 'gateway-tests', logger: log });
  const store = new RedisStore(redisUrl);
  await bus.ensureTopic(Topics.updates, { partitions: 3 });
  await bus.ensureTopic(Topics.roundEvents, { partitions: 1 });
  const tasks = new Map<string, FakeTask>();
  const aggregator = await startFakeAggregator(tasks);
  const common = { FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_GRPC_PORT: '0', FEDMM_DATA_DIR: join(root, 'data'), FEDMM_SHUTDOWN_GRACE_MS: '500' };
  const registry = await hostService(registryModule, { ...common }, { bus, store, log });
  const gatewayEnv = {
    ...common,
    FEDMM_TLS_CERT: join(pkiDir, PkiFiles.serverCert),
    FEDMM_TLS_KEY: join(pkiDir, PkiFiles.serverKey),
    FEDMM_TLS_CA: join(pkiDir, PkiFiles.caCert),
    FEDMM_AGGREGATOR_ADDR: aggregator.address,
    FEDMM_REGISTRY_ADDR: registry.address,
    ...env,
  };
  const gateway = await hostService(gatewayModule, gatewayEnv, { bus, store, log });
  const clients: GatewayClient[] = [];
  const clientAt = (gw: HostedService, creds: ChannelCredentials): GatewayClient => {
    const c = createRpcClient(gpb.GatewayServiceService, `localhost:${gw.port}`, creds);
    clients.push(c);
    return c;
  };
  const clientWith = (creds: ChannelCredentials): GatewayClient => clientAt(gateway, creds);
  return {
    pkiDir, otherPkiDir, bus, store, tasks, gateway, registry,
    client: (tenant, opts = {}) => clientWith(clientCredentials(readClientTlsFiles(opts.otherCa ? otherPkiDir : pkiDir, tenant))),
    clientWith,
    caPem: () => readClientTlsFiles(pkiDir, 'acme').caPem,
    startGateway: (more = {}) => hostService(gatewayModule, { ...gatewayEnv, ...more }, { bus, store, log }),
    clientOf: (gw, tenant) => clientAt(gw, clientCredentials(readClientTlsFiles(pkiDir, tenant))),
    async stop() {
      for (const c of clients) c.close();
      await gateway.stop();
      await registry.stop();
      await aggregator.stop();
      await bus.close();
      await store.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** A task with an open round that selected `selected`, whose layout is `tensors`. */
export function addTask(h: Harness, tensors: { name: string; shape: number[]; modality?: string }[], opts: { members?: string[]; selected?: string[]; maxUpdateNorm?: number; maxUpdateBytes?: number; shardElements?: number; state?: tpb.RoundState; round?: number } = {}): FakeTask {
  const taskId = `gw-${randomUUID().slice(0, 8)}`;
  const members = opts.members ?? ['acme', 'globex', 'initech'];
  const number = opts.round ?? 1;
  const t: FakeTask = {
    task: tpb.Task.fromPartial({ taskId, modelId: 'm', members, rounds: 5, currentRound: number, state: 'running', termsDigest: 'ab'.repeat(32), clientConfig: { lr: 0.01 } }),
    round: tpb.Round.fromPartial({ taskId, number, state: opts.state ?? tpb.RoundState.ROUND_STATE_OPEN, selected: opts.selected ?? members.slice(0, 2), attempt: 1, inputVersionId: 'm@1' }),
    policy: {
      layout: tensorPb.TensorLayout.fromPartial({ tensors: tensors.map((x) => ({ name: x.name, dtype: tensorPb.DType.D_TYPE_F32, shape: x.shape, modality: x.modality ?? '' })) }),
      maxUpdateNorm: opts.maxUpdateNorm ?? 0,
      maxUpdateBytes: opts.maxUpdateBytes ?? 0,
      shardElements: opts.shardElements ?? 0,
      secureAggregation: false,
      roundAttempt: 1,
    },
    reports: [],
    acceptances: [],
  };
  h.tasks.set(taskId, t);
  return t;
}

/**
 * Collects fedmm.updates records by task, from a consumer positioned at the end of every
 * partition before the test publishes anything (a sentinel per partition proves it).
 */
export class UpdateCollector {
  readonly byTask = new Map<string, BusMessage[]>();
  #consumer: Consumer | undefined;
  #sentinels = new Set<string>();

  async start(bus: KafkaBus): Promise<void> {
    const token = randomUUID();
    this.#consumer = await bus.subscribe({
      group: `gateway-tests-${token}`,
      topics: [Topics.updates],
      fromBeginning: false,
      handler: async (msg) => {
        if (msg.headers['sentinel'] === token) {
          this.#sentinels.add(msg.key);
          return;
        }
        const task = msg.headers['fedmm-task'];
        if (task) this.byTask.set(task, [...(this.byTask.get(task) ?? []), msg]);
      },
    });
    const parts = 3;
    const keys: string[] = [];
    const covered = new Set<number>();
    for (let i = 0; covered.size < parts; i++) {
      const p = await bus.partitionFor(Topics.updates, `sentinel-${i}`);
      if (!covered.has(p)) {
        covered.add(p);
        keys.push(`sentinel-${i}`);
      }
    }
    await waitFor(async () => {
      await bus.publish(Topics.updates, keys.map((key) => ({ key, value: new Uint8Array(0), headers: { sentinel: token } })));
      await new Promise((r) => setTimeout(r, 500));
      return keys.every((k) => this.#sentinels.has(k));
    }, { timeoutMs: 60_000, what: 'the update collector to reach the end of fedmm.updates' });
  }

  /** Waits until `pred` holds for the records of `task`. */
  async waitFor(task: string, pred: (msgs: BusMessage[]) => boolean, what: string): Promise<BusMessage[]> {
    return waitFor(() => {
      const m = this.byTask.get(task) ?? [];
      return pred(m) ? m : undefined;
    }, { timeoutMs: 30_000, what });
  }

  async stop(): Promise<void> {
    await this.#consumer?.stop();
  }
}

export { grpcCredentials };

/** Asserts that a gateway call fails with `code` (the domain code the client library maps the status to) and a message matching `re`. */
export async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp): Promise<FedmmError> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof FedmmError)) throw e;
    if (e.code !== code) throw new Error(`expected ${code}, got ${e.code}: ${e.message}`);
    if (re && !re.test(e.message)) throw new Error(`message ${JSON.stringify(e.message)} does not match ${re}`);
    return e;
  }
  throw new Error(`expected the call to fail with ${code}, it succeeded`);
}
