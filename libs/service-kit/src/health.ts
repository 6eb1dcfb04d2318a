import type { ChannelCredentials } from '@grpc/grpc-js';
import { health as healthProto } from '@fedmm/proto';
import { createRpcClient } from './client.js';

/** Asks a server's grpc.health.v1 service whether it serves; resolves to the status name. */
export async function checkHealth(address: string, opts: { service?: string; creds?: ChannelCredentials; deadlineMs?: number; channelOptions?: Record<string, string | number> } = {}): Promise<string> {
  const client = createRpcClient(healthProto.HealthService, address, opts.creds, opts.channelOptions);
  try {
    const res = await client.check({ service: opts.service ?? '' }, { deadlineMs: opts.deadlineMs ?? 3000 });
    return healthProto.healthCheckResponse_ServingStatusToJSON(res.status);
  } finally {
    client.close();
  }
}
