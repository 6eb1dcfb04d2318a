import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { credentials, ServerCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import { FedmmError } from '@fedmm/core';
import { publicKeysEqual } from './certificates.js';
import { assertTenantName } from './names.js';
import { PkiFiles } from './layout.js';

/** The PEM material one side of a mutual-TLS connection needs: the CA it trusts, its certificate and key. */
export interface TlsMaterial {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/** gRPC server credentials that require and verify a client certificate signed by the CA. */
export function serverCredentials(source: string | TlsMaterial): ServerCredentials {
  const m = typeof source === 'string' ? readServerTlsFiles(source) : source;
  checkMaterial(m, 'server');
  return ServerCredentials.createSsl(Buffer.from(m.caPem), [{ cert_chain: Buffer.from(m.certPem), private_key: Buffer.from(m.keyPem) }], true);
}

/** gRPC channel credentials that present a client certificate and trust servers signed by the CA. */
export function clientCredentials(m: TlsMaterial): ChannelCredentials {
  checkMaterial(m, 'client');
  return credentials.createSsl(Buffer.from(m.caPem), Buffer.from(m.keyPem), Buffer.from(m.certPem));
}

/** Reads ca.crt, server.crt and server.key from a directory laid out by initPkiDir. */
export function readServerTlsFiles(dir: string): TlsMaterial {
  return {
    caPem: readPem(join(dir, PkiFiles.caCert), 'CA certificate'),
    certPem: readPem(join(dir, PkiFiles.serverCert), 'server certificate'),
    keyPem: readPem(join(dir, PkiFiles.serverKey), 'server key'),
  };
}

/** Reads a tenant's client certificate and key and the CA copy from a directory laid out by initPkiDir. */
export function readClientTlsFiles(dir: string, tenant: string): TlsMaterial {
  assertTenantName(tenant);
  if (tenant === PkiFiles.reservedTenant) throw new FedmmError('INVALID_ARGUMENT', `${PkiFiles.clientCaCert} is the CA copy, not a tenant certificate; name a tenant`);
  return {
    caPem: readPem(join(dir, PkiFiles.clientCaCert), 'CA certificate'),
    certPem: readPem(join(dir, PkiFiles.clientCert(tenant)), `client certificate of ${tenant}`),
    keyPem: readPem(join(dir, PkiFiles.clientKey(tenant)), `client key of ${tenant}`),
  };
}

function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FedmmError('NOT_FOUND', `no ${what} at ${path}; create it with fedmm pki init (docs/PKI.md)`, { path });
    throw new FedmmError('FAILED_PRECONDITION', `cannot read the ${what} at ${path}: ${(e as Error).message}`, { path });
  }
}

// OpenSSL reports a mismatched key or a malformed PEM only when the first connection arrives, and vaguely;
// checking here turns it into an error at startup that names the file to fix.
function checkMaterial(m: TlsMaterial, side: 'server' | 'client'): void {
  let cert: X509Certificate;
  try {
    new X509Certificate(m.caPem);
  } catch {
    throw new FedmmError('INVALID_ARGUMENT', `the CA certificate given to the ${side} credentials is not a PEM X.509 certificate`);
  }
  try {
    cert = new X509Certificate(m.certPem);
  } catch {
    throw new FedmmError('INVALID_ARGUMENT', `the ${side} certificate is not a PEM X.509 certificate`);
  }
  let matches: boolean;
  try {
    matches = publicKeysEqual(cert.publicKey, createPublicKey(createPrivateKey(m.keyPem)));
  } catch {
    throw new FedmmError('INVALID_ARGUMENT', `the ${side} key is not a PEM private key`);
  }
  if (!matches) {
    throw new FedmmError('INVALID_ARGUMENT', `the ${side} key does not belong to the ${side} certificate (${cert.subject.replace(/\n/g, ', ')}); pass the key issued with it`);
  }
}
