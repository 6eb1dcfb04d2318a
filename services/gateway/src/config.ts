import { randomUUID } from 'node:crypto';
import type { EnvReader } from '@fedmm/core';
import type { BaseConfig } from '@fedmm/service-kit';

/** Settings of the gateway, compiled once from the environment. */
export interface GatewayConfig {
  /** Identifies this gateway process: its round-event consumer group and the owner of its upload sessions. */
  readonly instanceId: string;
  /** Concurrent upload and download streams one tenant may hold (FEDMM_GATEWAY_MAX_STREAMS_PER_TENANT). */
  readonly maxStreamsPerTenant: number;
  /** Upload plus download bytes per second per tenant; 0 = unlimited (FEDMM_GATEWAY_BYTES_PER_SECOND). */
  readonly bytesPerSecond: number;
  /** Longest a stream waits for bandwidth before the call fails with RESOURCE_EXHAUSTED. */
  readonly rateMaxWaitMs: number;
  /** An upload session nobody touched for this long is dropped and its shards rejected. */
  readonly uploadSessionIdleMs: number;
  /** How long a gateway's hold on an upload lasts between renewals; another gateway takes a lapsed one over. */
  readonly uploadLeaseMs: number;
  /** Decoded update bytes one upload may have in flight to Kafka (its memory window). */
  readonly uploadWindowBytes: number;
  /** Longest ReceiveSecAggMessages waits, whatever the client asks. */
  readonly secaggMaxWaitSeconds: number;
  /** Round events one subscriber may lag behind before its stream ends (it resubscribes). */
  readonly subscriberQueueLimit: number;
}

/** Reads the gateway's settings (see docs/GATEWAY.md). */
export function readGatewayConfig(read: EnvReader, _base: BaseConfig): GatewayConfig {
  return {
    instanceId: read.string('FEDMM_GATEWAY_INSTANCE_ID', `gw-${randomUUID().slice(0, 12)}`),
    maxStreamsPerTenant: read.int('FEDMM_GATEWAY_MAX_STREAMS_PER_TENANT', 4, { min: 1, max: 10_000 }),
    bytesPerSecond: read.int('FEDMM_GATEWAY_BYTES_PER_SECOND', 0, { min: 0 }),
    rateMaxWaitMs: read.int('FEDMM_GATEWAY_RATE_MAX_WAIT_MS', 10_000, { min: 0 }),
    uploadSessionIdleMs: read.int('FEDMM_GATEWAY_UPLOAD_IDLE_MS', 15 * 60_000, { min: 1000 }),
    uploadLeaseMs: read.int('FEDMM_GATEWAY_UPLOAD_LEASE_MS', 10_000, { min: 1000, max: 300_000 }),
    uploadWindowBytes: read.int('FEDMM_GATEWAY_UPLOAD_WINDOW_BYTES', 8 * 1024 * 1024, { min: 1024 * 1024, max: 1024 * 1024 * 1024 }),
    secaggMaxWaitSeconds: read.int('FEDMM_GATEWAY_SECAGG_MAX_WAIT_SECONDS', 60, { min: 0, max: 600 }),
    subscriberQueueLimit: read.int('FEDMM_GATEWAY_SUBSCRIBER_QUEUE', 1000, { min: 1 }),
  };
}
