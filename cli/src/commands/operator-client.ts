import { readFileSync } from 'node:fs';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { DefaultPorts } from '@fedmm/service-kit';
import { UsageError } from '../command.js';

/** The valuation service's address: --addr, else FEDMM_VALUATION_ADDR, else the local default. */
export function valuationAddress(addr: string | undefined): string {
  return addr ?? process.env['FEDMM_VALUATION_ADDR'] ?? `127.0.0.1:${DefaultPorts.valuation}`;
}

/** mTLS with the operator's certificate when FEDMM_TLS_CA, FEDMM_TLS_CERT and FEDMM_TLS_KEY are set, else plaintext. */
export function operatorCredentials(): ChannelCredentials {
  const ca = process.env['FEDMM_TLS_CA'];
  const cert = process.env['FEDMM_TLS_CERT'];
  const key = process.env['FEDMM_TLS_KEY'];
  if (!ca && !cert && !key) return credentials.createInsecure();
  if (!ca || !cert || !key) throw new UsageError('set all of FEDMM_TLS_CA, FEDMM_TLS_CERT and FEDMM_TLS_KEY for mutual TLS, or none');
  return credentials.createSsl(readFileSync(ca), readFileSync(key), readFileSync(cert));
}
