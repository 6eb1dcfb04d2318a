import { isHostPort, type EnvReader } from '@fedmm/core';

export const ServiceNames = ['gateway', 'registry', 'aggregator', 'aggregator-worker', 'privacy', 'valuation'] as const;
export type ServiceName = (typeof ServiceNames)[number];

/** Default gRPC port of each service. */
export const DefaultPorts: Readonly<Record<ServiceName, number>> = Object.freeze({
  gateway: 7443,
  registry: 7001,
  aggregator: 7002,
  privacy: 7003,
  valuation: 7004,
  'aggregator-worker': 7005,
});

export interface BaseConfig {
  service: ServiceName;
  host: string;
  grpcPort: number;
  /** Plaintext port serving only grpc.health.v1 (for kubelet probes of an mTLS server); unset: none. */
  healthPort?: number;
  bus: { kind: 'kafka' | 'embedded'; brokers: string[]; ssl: boolean; sasl?: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string } };
  store: { kind: 'redis' | 'sqlite'; redisUrl: string; redisPassword?: string; sqlitePath: string };
  dataDir: string;
  tls?: { certFile: string; keyFile: string; caFile: string };
  peers: { registry: string; aggregator: string; privacy: string; valuation: string };
  shutdownGraceMs: number;
}

/** Reads the settings every service shares (see docs/CONFIGURATION.md). */
export function readBaseConfig(read: EnvReader, service: ServiceName): BaseConfig {
  const addr = (name: string, fallback: string): string => {
    const v = read.string(name, fallback);
    if (!isHostPort(v)) read.oneOf(name, ['<host>:<port>'] as const, '<host>:<port>');
    return v;
  };
  const dataDir = read.string('FEDMM_DATA_DIR', './.fedmm-data');
  const certFile = read.optionalString('FEDMM_TLS_CERT');
  const keyFile = read.optionalString('FEDMM_TLS_KEY');
  const caFile = read.optionalString('FEDMM_TLS_CA');
  const mechanism = read.optionalString('FEDMM_KAFKA_SASL_MECHANISM');
  const saslMech = mechanism ? read.oneOf('FEDMM_KAFKA_SASL_MECHANISM', ['plain', 'scram-sha-256', 'scram-sha-512'] as const, 'plain') : undefined;
  const redisPassword = read.optionalString('FEDMM_REDIS_PASSWORD');
  const healthPort = read.optionalString('FEDMM_HEALTH_PORT') === undefined ? undefined : read.int('FEDMM_HEALTH_PORT', 0, { min: 0, max: 65535 });
  const cfg: BaseConfig = {
    service,
    host: read.string('FEDMM_GRPC_HOST', '0.0.0.0'),
    grpcPort: read.int('FEDMM_GRPC_PORT', DefaultPorts[service], { min: 0, max: 65535 }),
    ...(healthPort === undefined ? {} : { healthPort }),
    bus: {
      kind: read.oneOf('FEDMM_BUS', ['kafka', 'embedded'] as const, 'kafka'),
      brokers: read.list('FEDMM_KAFKA_BROKERS', ['127.0.0.1:9092']),
      ssl: read.bool('FEDMM_KAFKA_SSL', false),
      ...(saslMech ? { sasl: { mechanism: saslMech, username: read.string('FEDMM_KAFKA_SASL_USERNAME'), password: read.string('FEDMM_KAFKA_SASL_PASSWORD') } } : {}),
    },
    store: {
      kind: read.oneOf('FEDMM_STORE', ['redis', 'sqlite'] as const, 'redis'),
      redisUrl: read.string('FEDMM_REDIS_URL', 'redis://127.0.0.1:6379'),
      ...(redisPassword ? { redisPassword } : {}),
      sqlitePath: read.string('FEDMM_SQLITE_PATH', `${dataDir}/${service}.db`),
    },
    dataDir,
    peers: {
      registry: addr('FEDMM_REGISTRY_ADDR', `127.0.0.1:${DefaultPorts.registry}`),
      aggregator: addr('FEDMM_AGGREGATOR_ADDR', `127.0.0.1:${DefaultPorts.aggregator}`),
      privacy: addr('FEDMM_PRIVACY_ADDR', `127.0.0.1:${DefaultPorts.privacy}`),
      valuation: addr('FEDMM_VALUATION_ADDR', `127.0.0.1:${DefaultPorts.valuation}`),
    },
    shutdownGraceMs: read.int('FEDMM_SHUTDOWN_GRACE_MS', 15_000, { min: 0 }),
  };
  if (certFile || keyFile || caFile) {
    cfg.tls = { certFile: read.string('FEDMM_TLS_CERT'), keyFile: read.string('FEDMM_TLS_KEY'), caFile: read.string('FEDMM_TLS_CA') };
  }
  return cfg;
}
