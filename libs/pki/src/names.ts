import { isIP } from 'node:net';
import { FedmmError } from '@fedmm/core';

/** What a tenant name may look like: it appears in certificates, store keys and topic names. */
export const TENANT_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{1,62}$/;

/** The SPIFFE ID prefix under which a client certificate names its tenant. */
export const TENANT_SPIFFE_PREFIX = 'spiffe://fedmm/tenant/';

/** The organisation every development client certificate carries in its subject. */
export const TENANT_ORGANIZATION = 'fedmm tenants';

/** Returns the tenant name unchanged, or throws INVALID_ARGUMENT saying what a valid one looks like. */
export function assertTenantName(tenant: string): string {
  if (typeof tenant !== 'string' || !TENANT_NAME_PATTERN.test(tenant)) {
    throw new FedmmError(
      'INVALID_ARGUMENT',
      `tenant name ${JSON.stringify(tenant)} is not valid: use 2 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit (for example "acme-robotics")`,
      { tenant },
    );
  }
  return tenant;
}

/** Whether a string is a valid tenant name. */
export function isTenantName(tenant: string): boolean {
  return TENANT_NAME_PATTERN.test(tenant);
}

/** The SPIFFE ID (a SAN URI) that names a tenant in its client certificate. */
export function tenantSpiffeId(tenant: string): string {
  return `${TENANT_SPIFFE_PREFIX}${assertTenantName(tenant)}`;
}

// RFC 1123 labels; a leading "*." wildcard is allowed for DNS SANs.
const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

/** Throws INVALID_ARGUMENT unless the name is a DNS name a server certificate can carry. */
export function assertDnsName(name: string): string {
  const labels = name.startsWith('*.') ? name.slice(2).split('.') : name.split('.');
  if (name.length > 253 || labels.length === 0 || !labels.every((l) => DNS_LABEL.test(l))) {
    throw new FedmmError('INVALID_ARGUMENT', `server name ${JSON.stringify(name)} is not a valid DNS name; use names like gateway.fedmm.svc or *.example.com`, { name });
  }
  return name.toLowerCase();
}

/** Throws INVALID_ARGUMENT unless the string is an IPv4 or IPv6 address. */
export function assertIpAddress(ip: string): string {
  if (isIP(ip) === 0) throw new FedmmError('INVALID_ARGUMENT', `${JSON.stringify(ip)} is not an IPv4 or IPv6 address`, { ip });
  return ip;
}
