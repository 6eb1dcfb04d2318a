import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { health as healthProto } from '@fedmm/proto';
import { FedmmError, type Logger } from '@fedmm/core';
import { unary } from './handlers.js';

const { HealthService, HealthCheckResponse_ServingStatus: ServingStatus } = healthProto;

export interface ServiceBinding {
  /** Fully qualified service name for health checks, e.g. fedmm.v1.RegistryService. */
  name: string;
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

export interface GrpcServerOptions {
  name: string;
  host: string;
  port: number;
  credentials?: ServerCredentials;
  services: ServiceBinding[];
  log: Logger;
  /** Longest a connection lives before the server asks the client to reconnect (rebalances behind a Service). */
  maxConnectionAgeMs?: number;
  maxReceiveMessageBytes?: number;
}

/** A running gRPC server with the standard grpc.health.v1 service. */
export interface RunningServer {
  readonly port: number;
  readonly address: string;
  setServing(serving: boolean): void;
  /** Stops accepting calls, lets in-flight calls finish for up to graceMs, then closes the rest. */
  shutdown(graceMs?: number): Promise<void>;
}

/** Creates, binds and starts a gRPC server with health checks, keepalive and a connection age limit. */
export async function startGrpcServer(opts: GrpcServerOptions): Promise<RunningServer> {
  const server = new Server({
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    'grpc.max_connection_age_ms': opts.maxConnectionAgeMs ?? 30 * 60_000,
    'grpc.max_connection_age_grace_ms': 5 * 60_000,
    'grpc.max_receive_message_length': opts.maxReceiveMessageBytes ?? 4 * 1024 * 1024,
    'grpc.max_send_message_length': 4 * 1024 * 1024,
  });
  let serving = true;
  const statusFor = (service: string): number => {
    if (service !== '' && !opts.services.some((s) => s.name === service)) {
      throw new FedmmError('NOT_FOUND', `unknown service ${JSON.stringify(service)}; this server serves ${opts.services.map((s) => s.name).join(', ')}`);
    }
    return serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  server.addService(HealthService, {
    check: unary('grpc.health.v1.Health/Check', opts.log, async (req: healthProto.HealthCheckRequest) => ({ status: statusFor(req.service) })),
    watch: (call: { request: healthProto.HealthCheckRequest; write(m: unknown): boolean; on(ev: string, fn: () => void): void }) => {
      let last = -1;
      const tick = (): void => {
        let s: number;
        try {
          s = statusFor(call.request.service);
        } catch {
          s = ServingStatus.SERVICE_UNKNOWN;
        }
        if (s !== last) {
          last = s;
          call.write({ status: s });
        }
      };
      tick();
      const t = setInterval(tick, 1000);
      call.on('cancelled', () => clearInterval(t));
      call.on('close', () => clearInterval(t));
    },
  });
  for (const s of opts.services) server.addService(s.definition, s.implementation);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${opts.host}:${opts.port}`, opts.credentials ?? ServerCredentials.createInsecure(), (err, p) => {
      if (err) reject(new FedmmError('UNAVAILABLE', `cannot listen on ${opts.host}:${opts.port} for ${opts.name}: ${err.message}; choose another port with FEDMM_GRPC_PORT`));
      else resolve(p);
    });
  });
  opts.log.info('gRPC server listening', { service: opts.name, address: `${opts.host}:${port}` });
  return {
    port,
    address: `${opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host}:${port}`,
    setServing(v) {
      serving = v;
    },
    async shutdown(graceMs = 10_000) {
      serving = false;
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          opts.log.warn('in-flight calls did not finish in time; closing them', { service: opts.name, graceMs });
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      opts.log.info('gRPC server stopped', { service: opts.name });
    },
  };
}
