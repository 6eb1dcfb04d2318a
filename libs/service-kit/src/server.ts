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
  /** The grpc.health.v1 status of a service of this server ('' = the server); throws NOT_FOUND for others. */
  servingStatus(service: string): number;
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
  server.addService(HealthService, healthImplementation(statusFor, opts.log));
  for (const s of opts.services) server.addService(s.definition, s.implementation);
  const port = await bind(server, opts.host, opts.port, opts.credentials ?? ServerCredentials.createInsecure(), opts.name, 'FEDMM_GRPC_PORT');
  widenFlowControl(server);
  opts.log.info('gRPC server listening', { service: opts.name, address: `${opts.host}:${port}` });
  return {
    port,
    address: `${opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host}:${port}`,
    setServing(v) {
      serving = v;
    },
    servingStatus: statusFor,
    async shutdown(graceMs = 10_000) {
      serving = false;
      await drain(server, graceMs, opts.name, opts.log);
      opts.log.info('gRPC server stopped', { service: opts.name });
    },
  };
}

export interface HealthServerOptions {
  name: string;
  host: string;
  port: number;
  log: Logger;
  /** The server whose serving state this one reports. */
  mirror: Pick<RunningServer, 'servingStatus'>;
}

/** A running plaintext server that serves only grpc.health.v1. */
export interface RunningHealthServer {
  readonly port: number;
  readonly address: string;
  shutdown(): Promise<void>;
}

/**
 * Starts a plaintext server that answers only grpc.health.v1, with the serving state of another
 * server: kubelet gRPC probes cannot present client certificates to an mTLS port.
 */
export async function startHealthServer(opts: HealthServerOptions): Promise<RunningHealthServer> {
  const server = new Server({ 'grpc.max_receive_message_length': 64 * 1024 });
  server.addService(HealthService, healthImplementation((service) => opts.mirror.servingStatus(service), opts.log));
  const port = await bind(server, opts.host, opts.port, ServerCredentials.createInsecure(), `the health checks of ${opts.name}`, 'FEDMM_HEALTH_PORT');
  opts.log.info('health server listening', { service: opts.name, address: `${opts.host}:${port}` });
  return {
    port,
    address: `${opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host}:${port}`,
    async shutdown() {
      await drain(server, 1000, `${opts.name} health`, opts.log);
    },
  };
}

function healthImplementation(statusFor: (service: string) => number, log: Logger): UntypedServiceImplementation {
  return {
    check: unary('grpc.health.v1.Health/Check', log, async (req: healthProto.HealthCheckRequest) => ({ status: statusFor(req.service) })),
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
  };
}

function bind(server: Server, host: string, port: number, creds: ServerCredentials, what: string, portVariable: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, creds, (err, p) => {
      if (err) reject(new FedmmError('UNAVAILABLE', `cannot listen on ${host}:${port} for ${what}: ${err.message}; choose another port with ${portVariable}`));
      else resolve(p);
    });
  });
}

function drain(server: Server, graceMs: number, name: string, log: Logger): Promise<void> {
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      log.warn('in-flight calls did not finish in time; closing them', { service: name, graceMs });
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}

/** HTTP/2 flow-control window of server sessions: Node's default (64 KiB) caps a stream far below the link. */
const FLOW_CONTROL_WINDOW = 8 * 1024 * 1024;

/**
 * Raises the connection and stream windows of every HTTP/2 session the server accepts. grpc-js
 * exposes no server option for it, so this reaches its HTTP/2 servers through the (stable) private
 * map and uses Node's public Http2Session API.
 */
function widenFlowControl(server: Server): void {
  const servers = (server as unknown as { http2Servers?: Map<import('node:http2').Http2Server, unknown> }).http2Servers;
  for (const h2 of servers?.keys() ?? []) {
    h2.on('session', (session: import('node:http2').ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(FLOW_CONTROL_WINDOW);
        session.settings({ initialWindowSize: FLOW_CONTROL_WINDOW });
      } catch {
        // A session that closed at once needs no window.
      }
    });
  }
}
