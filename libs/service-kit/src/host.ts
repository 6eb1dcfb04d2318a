import { readFileSync } from 'node:fs';
import { ServerCredentials, credentials as grpcCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import { compileConfig, createLogger, FedmmError, type EnvReader, type Logger } from '@fedmm/core';
import type { Bus } from '@fedmm/bus';
import type { Store } from '@fedmm/store';
import { readBaseConfig, type BaseConfig, type ServiceName } from './config.js';
import { createBus, createStore } from './adapters.js';
import { startGrpcServer, startHealthServer, type RunningHealthServer, type RunningServer, type ServiceBinding } from './server.js';

/** What a service gets from its host: configuration, logs and the two ports. */
export interface ServiceContext<C> {
  base: BaseConfig;
  config: C;
  log: Logger;
  bus: Bus;
  store: Store;
  /** Credentials for calling the other platform services. */
  peerCredentials: ChannelCredentials;
}

export interface StartedService {
  bindings: ServiceBinding[];
  /** Called after the gRPC server stopped accepting calls. */
  stop(): Promise<void>;
  /** Whether the service's server requires client certificates (mTLS). */
  requireClientCertificates?: boolean;
}

/** A service as the host runs it: how to read its own settings, and how to start it. */
export interface ServiceModule<C> {
  name: ServiceName;
  readConfig(read: EnvReader, base: BaseConfig): C;
  start(ctx: ServiceContext<C>): Promise<StartedService>;
}

export interface HostedService<C = unknown> {
  name: ServiceName;
  address: string;
  port: number;
  server: RunningServer;
  /** The plaintext health-only server, when FEDMM_HEALTH_PORT is set. */
  healthServer?: RunningHealthServer;
  ctx: ServiceContext<C>;
  stop(): Promise<void>;
}

/** Compiles configuration from the environment, creates adapters, starts the service and its gRPC server. */
export async function hostService<C>(
  module: ServiceModule<C>,
  env: NodeJS.ProcessEnv,
  shared: { bus?: Bus; store?: Store; log?: Logger } = {},
): Promise<HostedService<C>> {
  const { base, config } = compileConfig(env, (read) => {
    const base = readBaseConfig(read, module.name);
    return { base, config: module.readConfig(read, base) };
  });
  const log = (shared.log ?? createLogger()).child({ service: module.name });
  const bus = createBus(base, log, shared);
  const store = createStore(base, shared);
  const ctx: ServiceContext<C> = { base, config, log, bus, store, peerCredentials: grpcCredentials.createInsecure() };
  const started = await module.start(ctx);
  let creds = ServerCredentials.createInsecure();
  if (base.tls) {
    const read = (f: string, what: string): Buffer => {
      try {
        return readFileSync(f);
      } catch (e) {
        throw new FedmmError('INVALID_ARGUMENT', `cannot read the TLS ${what} ${f}: ${(e as Error).message}; check FEDMM_TLS_CERT, FEDMM_TLS_KEY and FEDMM_TLS_CA`);
      }
    };
    creds = ServerCredentials.createSsl(read(base.tls.caFile, 'CA'), [{ cert_chain: read(base.tls.certFile, 'certificate'), private_key: read(base.tls.keyFile, 'key') }], started.requireClientCertificates ?? true);
  } else if (started.requireClientCertificates) {
    await started.stop();
    throw new FedmmError('INVALID_ARGUMENT', `${module.name} serves clients with mutual TLS: set FEDMM_TLS_CERT, FEDMM_TLS_KEY and FEDMM_TLS_CA (fedmm pki init creates a development set)`);
  }
  const server = await startGrpcServer({ name: module.name, host: base.host, port: base.grpcPort, credentials: creds, services: started.bindings, log, maxReceiveMessageBytes: 4 * 1024 * 1024 });
  let healthServer: RunningHealthServer | undefined;
  if (base.healthPort !== undefined) {
    try {
      healthServer = await startHealthServer({ name: module.name, host: base.host, port: base.healthPort, log, mirror: server });
    } catch (e) {
      await server.shutdown(0);
      await started.stop();
      throw e;
    }
  }
  let stopped = false;
  return {
    name: module.name,
    address: server.address,
    port: server.port,
    server,
    ...(healthServer ? { healthServer } : {}),
    ctx,
    async stop() {
      if (stopped) return;
      stopped = true;
      // The main server reports NOT_SERVING from here on, and so does the health port until it closes.
      await server.shutdown(base.shutdownGraceMs);
      await healthServer?.shutdown();
      await started.stop();
      if (!shared.bus) await bus.close();
      if (!shared.store) await store.close();
    },
  };
}
