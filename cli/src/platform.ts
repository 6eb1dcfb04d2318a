import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { createLogger, type Logger } from '@fedmm/core';
import { EmbeddedBus, type Bus } from '@fedmm/bus';
import { SqliteStore, type Store } from '@fedmm/store';
import { DefaultPorts, checkHealth, hostService, type HostedService, type ServiceName } from '@fedmm/service-kit';
import { serviceModules, startOrder } from './services.js';

export interface PlatformOptions {
  dataDir: string;
  /** Port per service; 0 picks a free one. Default: each service's default port. */
  ports?: Partial<Record<ServiceName, number>>;
  /** Extra environment for every service (TLS files for the gateway, for example). */
  env?: NodeJS.ProcessEnv;
  /** Shared adapters; default: one embedded bus and one SQLite file for the whole platform. */
  bus?: Bus;
  store?: Store;
  log?: Logger;
  host?: string;
}

export interface Platform {
  services: HostedService[];
  addressOf(name: ServiceName): string;
  bus: Bus;
  store: Store;
  stop(): Promise<void>;
}

/** Runs the five services in one process on shared adapters (the embedded platform of `fedmm demo`). */
export async function startPlatform(opts: PlatformOptions): Promise<Platform> {
  mkdirSync(opts.dataDir, { recursive: true });
  const log = opts.log ?? createLogger({ platform: 'embedded' });
  const bus = opts.bus ?? new EmbeddedBus();
  const store = opts.store ?? new SqliteStore(join(opts.dataDir, 'platform.db'));
  const host = opts.host ?? '127.0.0.1';
  const services: HostedService[] = [];
  const addresses: Partial<Record<ServiceName, string>> = {};
  const port = (n: ServiceName): number => opts.ports?.[n] ?? DefaultPorts[n];
  // Peers are known before they start only when ports are fixed; with port 0 each service learns
  // the addresses of those started before it, which the start order makes sufficient.
  const peerEnv = (): NodeJS.ProcessEnv => ({
    FEDMM_REGISTRY_ADDR: addresses.registry ?? `${host}:${port('registry')}`,
    FEDMM_PRIVACY_ADDR: addresses.privacy ?? `${host}:${port('privacy')}`,
    FEDMM_VALUATION_ADDR: addresses.valuation ?? `${host}:${port('valuation')}`,
    FEDMM_AGGREGATOR_ADDR: addresses.aggregator ?? `${host}:${port('aggregator')}`,
  });
  try {
    for (const name of startOrder) {
      const module = serviceModules[name];
      if (!module) continue;
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        ...(opts.env ?? {}),
        FEDMM_BUS: 'embedded',
        FEDMM_STORE: 'sqlite',
        FEDMM_DATA_DIR: join(opts.dataDir, name),
        FEDMM_GRPC_HOST: host,
        FEDMM_GRPC_PORT: String(port(name)),
        ...peerEnv(),
      };
      // Only the gateway faces clients; platform-internal calls stay on loopback here.
      if (name !== 'gateway') for (const k of ['FEDMM_TLS_CERT', 'FEDMM_TLS_KEY', 'FEDMM_TLS_CA']) delete env[k];
      const hosted = await hostService(module, env, { bus, store, log });
      services.push(hosted);
      addresses[name] = hosted.address;
    }
  } catch (e) {
    for (const s of services.reverse()) await s.stop().catch(() => undefined);
    throw e;
  }
  return {
    services,
    bus,
    store,
    addressOf(name) {
      const a = addresses[name];
      if (!a) throw new Error(`service ${name} is not running`);
      return a;
    },
    async stop() {
      for (const s of [...services].reverse()) await s.stop();
      await bus.close();
      await store.close();
    },
  };
}

/** Health of every platform service (the gateway's over mTLS is checked by its own clients). */
export async function platformHealth(p: Platform): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const s of p.services) {
    if (s.name === 'gateway' && s.ctx.base.tls) continue;
    out[s.name] = await checkHealth(s.address).catch((e: unknown) => `UNREACHABLE (${(e as Error).message})`);
  }
  return out;
}
