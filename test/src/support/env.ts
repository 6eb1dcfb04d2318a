import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Addresses of the real Kafka broker and Redis server the tests run against. */
export const kafkaBrokers = (process.env['FEDMM_KAFKA_BROKERS'] ?? '127.0.0.1:9092').split(',');
export const redisUrl = process.env['FEDMM_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/**
 * The URL of one numbered database on the test Redis. A suite that flushes its database or holds
 * the coordinator's lease owns one, since suites run in parallel: 5 rounds, 6 failover, 7 trace,
 * 8 dashboards, 9 agent, 11 secure rounds, 12 client DP, 13 serve.
 */
export function redisDbUrl(db: number): string {
  return `${redisUrl.replace(/\/\d+$/, '')}/${db}`;
}

export function uniqueId(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `fedmm-${prefix}-`));
}

/** Environment for a service hosted in a test: loopback, an ephemeral port, its own data dir. */
export function serviceEnv(dataDir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_GRPC_PORT: '0', FEDMM_DATA_DIR: dataDir, FEDMM_LOG_LEVEL: process.env['FEDMM_LOG_LEVEL'] ?? 'warn', ...extra };
}
