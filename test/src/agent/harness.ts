// The whole platform in this process on real Kafka and Redis (as `fedmm demo` composes it, with the
// gateway on mutual TLS), restartable on the same store, bus, data dir and ports; company agents
// as `fedmm client run` processes; the base model pretrained and registered by `fedmm model pretrain`.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { createLogger, FedmmError, waitFor } from '@fedmm/core';
import { KafkaBus } from '@fedmm/bus';
import { RedisStore } from '@fedmm/store';
import { aggregator as apb, registry as rpb, task as tpb } from '@fedmm/proto';
import { initPkiDir, PkiFiles } from '@fedmm/pki';
import { createRpcClient, type RpcClient, type ServiceName } from '@fedmm/service-kit';
import { after, before } from 'node:test';
import { DEFAULT_COMPANIES, PUBLIC_SPEC, synthesize } from '@fedmm/data';
import { kafkaBrokers, redisDbUrl, tempDir, uniqueId } from '../support/env.js';
import { startGroupAtEnd } from '../observability/platform.js';
// The CLI is an application, not a workspace package, so its embedded platform has no package name to import by.
import { startPlatform, type Platform } from '../../../cli/dist/platform.js';

export const BIN = fileURLToPath(new URL('../../../bin/fedmm.js', import.meta.url));

/** One structured log line of an agent process. */
export type LogRecord = Record<string, unknown> & { msg: string; level: string; at: number };

/** A `fedmm client run` process and what it logged. */
export interface AgentProcess {
  readonly tenant: string;
  readonly workDir: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited, with how and when. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  readonly records: LogRecord[];
  /** Every line it wrote (JSON logs and progress), for failure messages. */
  readonly lines: string[];
  /** Resolves with the first record (logged so far or later) that `match` accepts. */
  waitFor(match: (r: LogRecord) => boolean, what: string, timeoutMs?: number): Promise<LogRecord>;
  count(msg: string | RegExp): number;
  tail(n?: number): string;
  stop(): Promise<void>;
}

/** Starts `fedmm client run` for a tenant of the harness's PKI (`taskId` may name several tasks; `extraArgs` go last). */
export function startAgent(spec: { tenant: string; gateway: string; pkiDir: string; dataDir: string; taskId: string | readonly string[]; workDir: string; testDir?: string; extraArgs?: readonly string[] }): AgentProcess {
  const tasks = (typeof spec.taskId === 'string' ? [spec.taskId] : spec.taskId).flatMap((t) => ['--task', t]);
  const args = [BIN, 'client', 'run', '--gateway', spec.gateway, '--tenant', spec.tenant, '--pki', spec.pkiDir, '--data', spec.dataDir, ...tasks, '--work', spec.workDir, '--seed', '5', ...(spec.testDir ? ['--test', spec.testDir] : []), ...(spec.extraArgs ?? [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FEDMM_LOG_LEVEL: 'info' } });
  const records: LogRecord[] = [];
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  const onLine = (line: string): void => {
    lines.push(line);
    if (line.startsWith('{')) {
      try {
        records.push({ ...(JSON.parse(line) as LogRecord), at: Date.now() });
      } catch {
        return;
      }
      for (const w of [...waiters]) w();
    }
  };
  for (const s of [child.stdout, child.stderr]) createInterface({ input: s }).on('line', onLine);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((r) => child.once('exit', (code, signal) => {
    for (const w of [...waiters]) w();
    r({ code, signal, at: Date.now() });
  }));
  const tail = (n = 40): string => lines.slice(-n).join('\n');
  return {
    tenant: spec.tenant,
    workDir: spec.workDir,
    child,
    exited,
    records,
    lines,
    tail,
    count: (msg) => records.filter((r) => (typeof msg === 'string' ? r.msg === msg : msg.test(r.msg))).length,
    waitFor(match, what, timeoutMs = 90_000) {
      return new Promise<LogRecord>((resolve, reject) => {
        const check = (): void => {
          const hit = records.find(match);
          if (hit) done(undefined, hit);
          else if (child.exitCode !== null || child.signalCode !== null) done(new Error(`agent ${spec.tenant} exited (${child.exitCode ?? child.signalCode}) before ${what}:\n${tail()}`));
        };
        const timer = setTimeout(() => done(new Error(`timed out after ${timeoutMs} ms waiting for agent ${spec.tenant}: ${what}\n${tail()}`)), timeoutMs);
        const done = (err?: Error, r?: LogRecord): void => {
          clearTimeout(timer);
          waiters.delete(check);
          if (err) reject(err);
          else resolve(r!);
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

/** Runs the CLI to completion; rejects with its output when it fails. */
export function runCli(args: string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FEDMM_LOG_LEVEL: 'warn' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`fedmm ${args.join(' ')} exited with ${code}:\n${out.slice(-3000)}`));
    });
  });
}

/** The five services on Kafka and Redis, restartable in place. */
export class RestartablePlatform {
  readonly pkiDir: string;
  readonly workerGroup = uniqueId('agent-e2e-workers');
  readonly valuationGroup = uniqueId('agent-e2e-valuation');
  /** Same name across restarts, so the restarted gateway's round-event group continues where it stopped. */
  readonly gatewayInstance = uniqueId('agent-e2e-gw');
  readonly #root: string;
  readonly #dbUrl: string;
  #ports: Partial<Record<ServiceName, number>> = { gateway: 0, registry: 0, aggregator: 0, privacy: 0, valuation: 0 };
  #platform: Platform | undefined;
  #coordinator: RpcClient<typeof apb.AggregatorServiceService> | undefined;
  /** Wall-clock times of each stop and start, for ordering assertions. */
  readonly stops: number[] = [];
  readonly starts: number[] = [];

  private constructor(root: string, redisDb: number) {
    this.#root = root;
    this.pkiDir = join(root, 'pki');
    this.#dbUrl = redisDbUrl(redisDb);
  }

  /** Issues the PKI, clears this suite's keys in its Redis database and starts the platform. */
  static async create(root: string, redisDb: number, tenants: string[]): Promise<RestartablePlatform> {
    const p = new RestartablePlatform(root, redisDb);
    await initPkiDir(p.pkiDir, { tenants });
    const admin = new Redis(p.#dbUrl);
    try {
      // The database is this suite's own; leftovers of an earlier run (tasks, a lease) would interfere.
      const keys = await admin.keys('fedmm:*');
      if (keys.length > 0) await admin.del(...keys);
    } finally {
      admin.disconnect();
    }
    const bus = new KafkaBus({ brokers: kafkaBrokers, clientId: 'agent-e2e-setup', logger: createLogger({ test: 'agent-e2e' }, 'error') });
    try {
      // Fresh groups start at the end of fedmm.updates, skipping what other suites left on the broker.
      await startGroupAtEnd(bus, p.workerGroup);
      await startGroupAtEnd(bus, p.valuationGroup);
    } finally {
      await bus.close();
    }
    await p.start();
    return p;
  }

  get platform(): Platform {
    if (!this.#platform) throw new Error('the platform is stopped');
    return this.#platform;
  }

  get coordinator(): RpcClient<typeof apb.AggregatorServiceService> {
    if (!this.#coordinator) throw new Error('the platform is stopped');
    return this.#coordinator;
  }

  /** host:port of the gateway (stable across restarts). */
  get gateway(): string {
    return `localhost:${this.#ports.gateway}`;
  }

  addressOf(name: ServiceName): string {
    return this.platform.addressOf(name);
  }

  /** Starts every service on a new Kafka client and Redis connection (the ports of the first start). */
  async start(): Promise<void> {
    const log = createLogger({ test: 'agent-e2e' }, 'error');
    const bus = new KafkaBus({ brokers: kafkaBrokers, clientId: 'agent-e2e', sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, logger: log });
    const store = new RedisStore(this.#dbUrl);
    this.#platform = await startPlatform({
      dataDir: join(this.#root, 'platform'),
      ports: this.#ports,
      bus,
      store,
      log,
      env: {
        FEDMM_TLS_CERT: join(this.pkiDir, PkiFiles.serverCert), FEDMM_TLS_KEY: join(this.pkiDir, PkiFiles.serverKey), FEDMM_TLS_CA: join(this.pkiDir, PkiFiles.caCert),
        FEDMM_LOG_LEVEL: 'error', FEDMM_SHUTDOWN_GRACE_MS: '500', FEDMM_AGGREGATOR_LEASE_MS: '3000', FEDMM_AGGREGATOR_TICK_MS: '100',
        FEDMM_AGGREGATOR_WORKER_GROUP: this.workerGroup, FEDMM_VALUATION_GROUP: this.valuationGroup, FEDMM_VALUATION_UPDATE_WAIT_MS: '5000',
        FEDMM_GATEWAY_INSTANCE_ID: this.gatewayInstance,
      },
    });
    for (const s of this.#platform.services) this.#ports[s.name] = s.port;
    this.#coordinator = createRpcClient(apb.AggregatorServiceService, this.#platform.addressOf('aggregator'));
    this.starts.push(Date.now());
  }

  /** Stops every service (gRPC servers, consumers, the Kafka client and the Redis connection). */
  async stop(): Promise<void> {
    if (!this.#platform) return;
    this.stops.push(Date.now());
    this.#coordinator?.close();
    this.#coordinator = undefined;
    const p = this.#platform;
    this.#platform = undefined;
    await p.stop();
  }

  /** Pretrains a small base on the public split and registers it with `fedmm model pretrain`; returns the initial adapter version. */
  async registerBase(modelId: string, publicDir: string): Promise<string> {
    const out = await runCli(['model', 'pretrain', '--data', publicDir, '--model-id', modelId, '--registry', this.addressOf('registry'), '--epochs', '1', '--rank', '4', '--alpha', '8', '--out', join(this.#root, 'models')]);
    const m = /initial adapters\s+(\S+)/.exec(out);
    if (!m) throw new Error(`fedmm model pretrain did not print the initial adapter version:\n${out}`);
    return m[1]!;
  }

  /** Creates a task once the coordinator holds its lease and opens round 1. */
  async openTask(task: Partial<tpb.Task> & { taskId: string; modelId: string; baseVersionId: string; members: string[] }): Promise<void> {
    const full = tpb.Task.fromPartial({ rounds: 1, strategy: { name: 'fedavg' }, privacy: { mode: 'none' }, roundDeadlineSeconds: 180, ...task });
    const whileLeading = (call: () => Promise<unknown>, what: string): Promise<unknown> => waitFor(async () => call().then(() => true, (e: Error) => {
      if (/not the leader|lost its lease|UNAVAILABLE/i.test(e.message)) return false;
      throw e;
    }), { timeoutMs: 30_000, intervalMs: 200, what });
    await whileLeading(() => this.coordinator.createTask({ task: full }).catch((e: unknown) => {
      if (!(e instanceof FedmmError && e.code === 'ALREADY_EXISTS')) throw e;
    }), 'the coordinator to create the task');
    await whileLeading(async () => {
      if ((await this.coordinator.getTask({ taskId: task.taskId })).task!.currentRound === 0) await this.coordinator.startRound({ taskId: task.taskId });
    }, 'the coordinator to open round 1');
  }

  /** Round `n` of a task (attempt as the coordinator holds it). */
  async round(taskId: string, n: number): Promise<tpb.Round> {
    return (await this.coordinator.getRound({ taskId, number: n }, { deadlineMs: 10_000 })).round!;
  }

  /** Waits until round `n` is published and returns it; fails fast when it fails. */
  async published(taskId: string, n: number, timeoutMs: number): Promise<tpb.Round> {
    return waitFor(async () => {
      const r = await this.round(taskId, n).catch(() => undefined);
      if (r?.state === tpb.RoundState.ROUND_STATE_FAILED) throw new Error(`round ${n} of ${taskId} failed: ${r.failureReason}`);
      return r?.state === tpb.RoundState.ROUND_STATE_PUBLISHED ? r : undefined;
    }, { timeoutMs, intervalMs: 250, what: `round ${n} of ${taskId} to publish` });
  }

  /** A version's record from the registry. */
  async version(versionId: string): Promise<rpb.ModelVersion> {
    const c = createRpcClient(rpb.RegistryServiceService, this.addressOf('registry'));
    try {
      return (await c.getVersion({ versionId }, { deadlineMs: 10_000 })).version!;
    } finally {
      c.close();
    }
  }
}

/** A TCP relay in front of the gateway that cuts every connection once, when the client has sent `cutAfterBytes`. */
export interface CuttingRelay {
  readonly port: number;
  /** Bytes the client had sent when the cut happened (undefined until then). */
  readonly cutAt: number | undefined;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Bytes the client has sent so far. */
  readonly sent: number;
  close(): Promise<void>;
}

/**
 * Starts a relay to `target` (host:port) that drops its connections mid-stream after `cutAfterBytes`
 * client bytes; with `stall`, it keeps them open instead and forwards nothing more from the client
 * (a path that hangs, so an upload waits on flow control until the client gives up).
 */
export async function startCuttingRelay(target: string, cutAfterBytes: number, opts: { stall?: boolean } = {}): Promise<CuttingRelay> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const sockets = new Set<Socket>();
  let sent = 0;
  let cutAt: number | undefined;
  let connections = 0;
  const server = createServer((client) => {
    connections++;
    const upstream = connect(port, host);
    sockets.add(client).add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    upstream.pipe(client);
    client.on('data', (d: Buffer) => {
      const before = sent;
      sent += d.length;
      if (opts.stall && cutAt !== undefined) return;
      if (cutAt === undefined && sent >= cutAfterBytes) {
        cutAt = cutAfterBytes;
        // The bytes up to the cut reach the gateway; the rest, and everything in flight, is lost,
        // as when a network path or a load balancer goes away mid-stream.
        const cut = (): void => {
          for (const s of [...sockets]) s.destroy();
          sockets.clear();
        };
        upstream.write(d.subarray(0, Math.max(0, cutAfterBytes - before)), opts.stall ? undefined : cut);
        return;
      }
      if (!upstream.write(d)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    get cutAt() {
      return cutAt;
    },
    get connections() {
      return connections;
    },
    get sent() {
      return sent;
    },
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/** The agent's round state file (agent-state.json), as far as the tests read it. */
export interface AgentStateFile { version: number; rounds: Record<string, { status: string; uploadId?: string; updateFile?: string }> }

export const readAgentState = (a: AgentProcess): AgentStateFile => JSON.parse(readFileSync(join(a.workDir, 'agent-state.json'), 'utf8')) as AgentStateFile;

/** Matches a log record by its message (exact string or pattern). */
export const logIs = (msg: string | RegExp) => (r: LogRecord): boolean => (typeof msg === 'string' ? r.msg === msg : msg.test(r.msg));

/** What {@link useAgentFederation} sets up; its fields are valid inside the suite's tests. */
export interface AgentFederation {
  readonly root: string;
  readonly data: string;
  readonly platform: RestartablePlatform;
  readonly modelId: string;
  readonly baseVersion: string;
  /** Starts `fedmm client run` for a tenant on its synthetic train split; stopped after the suite. */
  agent(tenant: string, taskIds: string | readonly string[], work: string, opts?: { extraArgs?: readonly string[]; gateway?: string }): AgentProcess;
}

/**
 * Registers before/after hooks in the calling suite: gridco with a few dozen training samples and
 * homesafe with 400 (its training outlasts a platform stop or a SIGTERM), the platform on Redis
 * database `redisDb`, and a base pretrained on the public split.
 */
export function useAgentFederation(name: string, seed: number, redisDb: number): AgentFederation {
  const [gridco, homesafe] = DEFAULT_COMPANIES;
  const agents: AgentProcess[] = [];
  let root = '';
  let platform: RestartablePlatform | undefined;
  const fed = {
    root: '', data: '', modelId: '', baseVersion: '',
    get platform(): RestartablePlatform {
      if (!platform) throw new Error('the agent federation is not set up yet');
      return platform;
    },
    agent(tenant: string, taskIds: string | readonly string[], work: string, opts: { extraArgs?: readonly string[]; gateway?: string } = {}): AgentProcess {
      const a = startAgent({
        tenant, gateway: opts.gateway ?? fed.platform.gateway, pkiDir: fed.platform.pkiDir, dataDir: join(fed.data, tenant, 'train'),
        taskId: taskIds, workDir: join(fed.root, work, tenant), ...(opts.extraArgs ? { extraArgs: opts.extraArgs } : {}),
      });
      agents.push(a);
      return a;
    },
  };
  before(async () => {
    root = tempDir(name);
    fed.root = root;
    fed.data = join(root, 'data');
    await synthesize({
      outDir: fed.data,
      seed,
      companies: [{ ...gridco!, trainSize: 24, testSize: 8 }, { ...homesafe!, trainSize: 400, testSize: 8 }],
      publicSpec: { ...PUBLIC_SPEC, trainSize: 48 },
    });
    platform = await RestartablePlatform.create(root, redisDb, ['gridco', 'homesafe']);
    fed.modelId = uniqueId(`${name}-model`);
    fed.baseVersion = await platform.registerBase(fed.modelId, join(fed.data, 'public'));
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await platform?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });
  return fed;
}
