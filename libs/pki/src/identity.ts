import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { FedmmError } from '@fedmm/core';
import { isTenantName, TENANT_SPIFFE_PREFIX } from './names.js';

/** A certificate as TLS code meets it: node's peer certificate object, a crypto.X509Certificate, or PEM. */
export type CertificateInput = PeerCertificate | X509Certificate | string;

/** The transport details grpc-js gives a server call (`call.getAuthContext()`, grpc-js 1.13 and later). */
export interface AuthContextLike {
  transportSecurityType?: string;
  sslPeerCertificate?: PeerCertificate;
}

/** Anything with grpc-js's `getAuthContext`: every server call object and ServerSurfaceCall. */
export interface CallWithAuthContext {
  getAuthContext?: () => AuthContextLike | null;
}

type Identification = { tenant: string } | { reason: string };

/**
 * The tenant a client certificate names: its `spiffe://fedmm/tenant/<name>` SAN URI, else its subject CN.
 * Throws UNAUTHENTICATED when the certificate names no valid tenant.
 */
export function tenantFromPeerCertificate(cert: CertificateInput | null | undefined): string {
  const id = identify(cert);
  if ('tenant' in id) return id.tenant;
  throw new FedmmError('UNAUTHENTICATED', `${id.reason}; connect with the client certificate issued for your tenant (fedmm pki issue-client)`);
}

/** Like tenantFromPeerCertificate but returns undefined instead of throwing (fits audit's verifyAcceptance `identity`). */
export function tenantOfCertificate(cert: CertificateInput | null | undefined): string | undefined {
  const id = identify(cert);
  return 'tenant' in id ? id.tenant : undefined;
}

/**
 * The tenant of a grpc-js server call, from the client certificate the TLS handshake verified.
 * Throws UNAUTHENTICATED on a connection without a verified client certificate.
 */
export function tenantFromCall(call: CallWithAuthContext): string {
  if (typeof call.getAuthContext !== 'function') {
    throw new FedmmError('INTERNAL', 'this gRPC call object has no getAuthContext(); @grpc/grpc-js 1.13 or later is needed to read the client certificate');
  }
  const auth = call.getAuthContext() ?? {};
  // grpc-js reports a peer certificate only for TLS connections whose client certificate the handshake verified.
  if (auth.transportSecurityType !== 'ssl' || !auth.sslPeerCertificate) {
    throw new FedmmError(
      'UNAUTHENTICATED',
      'the call arrived without a verified client certificate (plaintext, or TLS without client authentication); connect with mutual TLS using the client certificate issued for your tenant',
    );
  }
  return tenantFromPeerCertificate(auth.sslPeerCertificate);
}

function identify(cert: CertificateInput | null | undefined): Identification {
  if (cert === null || cert === undefined) return { reason: 'no client certificate was presented' };
  let sanText: string | undefined;
  let commonNames: string[];
  if (typeof cert === 'string') {
    let parsed: X509Certificate;
    try {
      parsed = new X509Certificate(cert);
    } catch {
      return { reason: 'the client certificate is not a PEM X.509 certificate' };
    }
    sanText = parsed.subjectAltName;
    commonNames = commonNamesOf(parsed.subject);
  } else if (cert instanceof X509Certificate) {
    sanText = cert.subjectAltName;
    commonNames = commonNamesOf(cert.subject);
  } else {
    // node returns {} from getPeerCertificate() when the peer sent no certificate.
    if (!cert.subject && !cert.raw) return { reason: 'no client certificate was presented' };
    sanText = cert.subjectaltname;
    const cn = (cert.subject as Record<string, string | string[] | undefined> | undefined)?.CN;
    commonNames = cn === undefined ? [] : Array.isArray(cn) ? cn : [cn];
  }

  const uris = parseSubjectAltNames(sanText ?? '').filter((n) => n.type === 'URI').map((n) => n.value);
  const spiffe = uris.filter((u) => u.toLowerCase().startsWith('spiffe://'));
  const tenants = [...new Set(spiffe.filter((u) => u.startsWith(TENANT_SPIFFE_PREFIX)).map((u) => u.slice(TENANT_SPIFFE_PREFIX.length)))];
  if (tenants.length > 1) return { reason: `the client certificate names several tenants (${tenants.join(', ')}) in its SAN URIs` };
  const [fromUri] = tenants;
  if (fromUri !== undefined) {
    return isTenantName(fromUri) ? { tenant: fromUri } : { reason: `the client certificate's SAN URI ${TENANT_SPIFFE_PREFIX}${fromUri} does not name a valid tenant` };
  }
  // A certificate that declares some other SPIFFE identity (a service, another trust domain) is not a tenant's,
  // whatever its CN says.
  if (spiffe.length > 0) return { reason: `the client certificate's SPIFFE ID ${spiffe[0]} is not a tenant identity (${TENANT_SPIFFE_PREFIX}<tenant>)` };
  const cns = [...new Set(commonNames)];
  if (cns.length === 0) return { reason: `the client certificate has neither a ${TENANT_SPIFFE_PREFIX}<tenant> SAN URI nor a subject CN` };
  if (cns.length > 1) return { reason: `the client certificate's subject has several CNs (${cns.join(', ')})` };
  const cn = cns[0] as string;
  return isTenantName(cn) ? { tenant: cn } : { reason: `the client certificate's subject CN ${JSON.stringify(cn)} is not a valid tenant name` };
}

/** One subjectAltName entry as node prints it, e.g. `{ type: 'URI', value: 'spiffe://fedmm/tenant/acme' }`. */
export interface SubjectAltName {
  type: string;
  value: string;
}

/**
 * Parses node's subjectAltName text (`DNS:a, IP Address:127.0.0.1, URI:spiffe://...`). Node quotes a value
 * as a JSON string when it contains a comma, quote or other special character, so a forged
 * `URI:x, URI:spiffe://...` inside one value cannot pass for two entries.
 */
export function parseSubjectAltNames(text: string): SubjectAltName[] {
  const out: SubjectAltName[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon).trim();
    let j = colon + 1;
    let value: string;
    if (text[j] === '"') {
      let k = j + 1;
      while (k < text.length && text[k] !== '"') k += text[k] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(j, k + 1)) as string;
      } catch {
        value = text.slice(j + 1, k);
      }
      j = k + 1;
    } else {
      const end = text.indexOf(', ', j);
      const stop = end < 0 ? text.length : end;
      value = text.slice(j, stop);
      j = stop;
    }
    out.push({ type, value });
    const next = text.indexOf(', ', j);
    if (next < 0) break;
    i = next + 2;
  }
  return out;
}

function commonNamesOf(subject: string): string[] {
  // crypto.X509Certificate#subject is one attribute per line, values with special characters quoted.
  return subject
    .split('\n')
    .filter((line) => line.startsWith('CN='))
    .map((line) => {
      const v = line.slice(3);
      if (v.startsWith('"')) {
        try {
          return JSON.parse(v) as string;
        } catch {
          return v;
        }
      }
      return v;
    });
}
