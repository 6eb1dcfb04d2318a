import { createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { FedmmError } from '@fedmm/core';
import { x509 } from './x509.js';
import { assertDnsName, assertIpAddress, assertTenantName, TENANT_ORGANIZATION, tenantSpiffeId } from './names.js';

type CryptoKey = webcrypto.CryptoKey;

/** A certificate and its private key, both PEM; the key is PKCS#8 so node:crypto reads it directly. */
export interface CertificateAndKey {
  readonly certPem: string;
  readonly keyPem: string;
}

/** Default lifetimes, in days. Leaf certificates stay under the 398 days browsers and many TLS stacks accept. */
export const DefaultValidityDays = Object.freeze({ ca: 3650, server: 397, client: 397 });

const DAY_MS = 86_400_000;
// Backdating notBefore a little keeps a freshly issued certificate usable on hosts whose clocks run behind.
const CLOCK_SKEW_MS = 5 * 60_000;
const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;

export interface CreateCaOptions {
  commonName: string;
  validityDays?: number;
  notBefore?: Date;
}

/** Creates a self-signed EC P-256 CA that may sign leaf certificates only (pathLen 0). */
export async function createCa(opts: CreateCaOptions): Promise<CertificateAndKey> {
  const commonName = assertCommonName(opts.commonName, 'CA common name');
  const { notBefore, notAfter } = validity(opts.validityDays ?? DefaultValidityDays.ca, opts.notBefore);
  const keys = await webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [commonName] }],
    notBefore,
    notAfter,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    keys: keys as never,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: certificatePem(cert), keyPem: await privateKeyPem(keys.privateKey) };
}

export interface IssueServerCertOptions {
  ca: CertificateAndKey;
  commonName: string;
  /** DNS names the server answers to; 'localhost' is the usual first one. */
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  validityDays?: number;
  notBefore?: Date;
}

/** Issues a TLS server certificate (EKU serverAuth) for the given DNS names and IP addresses. */
export async function issueServerCert(opts: IssueServerCertOptions): Promise<CertificateAndKey> {
  const commonName = assertCommonName(opts.commonName, 'server common name');
  const dnsNames = unique((opts.dnsNames ?? []).map(assertDnsName));
  const ipAddresses = unique((opts.ipAddresses ?? []).map(assertIpAddress));
  if (dnsNames.length + ipAddresses.length === 0) {
    throw new FedmmError('INVALID_ARGUMENT', `server certificate ${commonName} needs at least one DNS name or IP address; clients check the name they dial against these`);
  }
  return issueLeaf(opts.ca, {
    subject: [{ CN: [commonName] }],
    sans: [...dnsNames.map((value) => ({ type: 'dns' as const, value })), ...ipAddresses.map((value) => ({ type: 'ip' as const, value }))],
    usage: x509.ExtendedKeyUsage.serverAuth,
    validityDays: opts.validityDays ?? DefaultValidityDays.server,
    notBefore: opts.notBefore,
  });
}

export interface IssueClientCertOptions {
  ca: CertificateAndKey;
  tenant: string;
  validityDays?: number;
  notBefore?: Date;
}

/** Issues a tenant's client certificate: CN and SPIFFE SAN URI name the tenant, EKU clientAuth. */
export async function issueClientCert(opts: IssueClientCertOptions): Promise<CertificateAndKey> {
  const tenant = assertTenantName(opts.tenant);
  return issueLeaf(opts.ca, {
    subject: [{ O: [TENANT_ORGANIZATION] }, { CN: [tenant] }],
    sans: [{ type: 'url', value: tenantSpiffeId(tenant) }],
    usage: x509.ExtendedKeyUsage.clientAuth,
    validityDays: opts.validityDays ?? DefaultValidityDays.client,
    notBefore: opts.notBefore,
  });
}

interface LeafSpec {
  subject: Record<string, string[]>[];
  sans: { type: 'dns' | 'ip' | 'url'; value: string }[];
  usage: x509.ExtendedKeyUsage;
  validityDays: number;
  notBefore: Date | undefined;
}

async function issueLeaf(ca: CertificateAndKey, spec: LeafSpec): Promise<CertificateAndKey> {
  const signer = await loadCa(ca);
  const { notBefore, notAfter } = validity(spec.validityDays, spec.notBefore);
  if (notAfter > signer.notAfter) {
    throw new FedmmError(
      'FAILED_PRECONDITION',
      `the certificate would be valid until ${notAfter.toISOString()} but its CA expires at ${signer.notAfter.toISOString()}; issue it with fewer validity days or rotate the CA (docs/PKI.md)`,
      { caExpires: signer.notAfter.toISOString() },
    );
  }
  const keys = await webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: spec.subject,
    issuer: signer.cert.subjectName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey as never,
    signingKey: signer.key as never,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([spec.usage], false),
      new x509.SubjectAlternativeNameExtension(spec.sans, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      signer.authorityKeyId,
    ],
  });
  return { certPem: certificatePem(cert), keyPem: await privateKeyPem(keys.privateKey) };
}

interface LoadedCa {
  cert: x509.X509Certificate;
  key: CryptoKey;
  algorithm: { name: string; hash: string };
  authorityKeyId: x509.AuthorityKeyIdentifierExtension;
  notAfter: Date;
}

async function loadCa(ca: CertificateAndKey): Promise<LoadedCa> {
  let nodeCert: X509Certificate;
  let key: KeyObject;
  try {
    nodeCert = new X509Certificate(ca.certPem);
  } catch (e) {
    throw new FedmmError('INVALID_ARGUMENT', `the CA certificate is not a PEM X.509 certificate (${(e as Error).message}); pass the contents of ca.crt`);
  }
  try {
    key = createPrivateKey(ca.keyPem);
  } catch (e) {
    throw new FedmmError('INVALID_ARGUMENT', `the CA key is not a PEM private key (${(e as Error).message}); pass the contents of ca.key`);
  }
  if (!nodeCert.ca) {
    throw new FedmmError('INVALID_ARGUMENT', `the certificate ${nodeCert.subject.replace(/\n/g, ', ')} is not a CA (basicConstraints CA:false); pass a CA certificate`);
  }
  if (!publicKeysEqual(nodeCert.publicKey, createPublicKey(key))) {
    throw new FedmmError('INVALID_ARGUMENT', 'the CA key does not belong to the CA certificate; pass the ca.key written together with ca.crt');
  }
  const { importParams, algorithm } = signingParams(key);
  const der = key.export({ type: 'pkcs8', format: 'der' });
  const cryptoKey = await webcrypto.subtle.importKey('pkcs8', der, importParams, false, ['sign']);
  const cert = new x509.X509Certificate(ca.certPem);
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const authorityKeyId = ski ? new x509.AuthorityKeyIdentifierExtension(ski.keyId, false) : await x509.AuthorityKeyIdentifierExtension.create(cert.publicKey, false);
  return { cert, key: cryptoKey, algorithm, authorityKeyId, notAfter: new Date(nodeCert.validTo) };
}

function signingParams(key: KeyObject): { importParams: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams; algorithm: { name: string; hash: string } } {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return { importParams: { name: 'ECDSA', namedCurve: 'P-256' }, algorithm: { name: 'ECDSA', hash: 'SHA-256' } };
    if (curve === 'secp384r1') return { importParams: { name: 'ECDSA', namedCurve: 'P-384' }, algorithm: { name: 'ECDSA', hash: 'SHA-384' } };
  }
  if (key.asymmetricKeyType === 'rsa') {
    return { importParams: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, algorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } };
  }
  throw new FedmmError(
    'INVALID_ARGUMENT',
    `the CA key is ${key.asymmetricKeyType ?? 'unknown'}${key.asymmetricKeyDetails?.namedCurve ? ` (${key.asymmetricKeyDetails.namedCurve})` : ''}; this tool signs with EC P-256, EC P-384 or RSA CA keys`,
  );
}

/** Whether two public keys are the same key. */
export function publicKeysEqual(a: KeyObject, b: KeyObject): boolean {
  return a.export({ type: 'spki', format: 'der' }).equals(b.export({ type: 'spki', format: 'der' }));
}

function validity(days: number, start: Date | undefined): { notBefore: Date; notAfter: Date } {
  if (!Number.isFinite(days) || days <= 0 || days > 36_500) {
    throw new FedmmError('INVALID_ARGUMENT', `validity of ${days} days is out of range; use a number of days above 0 and at most 36500`);
  }
  if (start !== undefined && Number.isNaN(start.getTime())) throw new FedmmError('INVALID_ARGUMENT', 'notBefore is not a valid date');
  const notBefore = new Date(start ?? Date.now() - CLOCK_SKEW_MS);
  // X.509 times have whole seconds; rounding here keeps notAfter - notBefore exact.
  notBefore.setUTCMilliseconds(0);
  return { notBefore, notAfter: new Date(notBefore.getTime() + Math.round(days * DAY_MS)) };
}

function serialNumber(): string {
  // 16 random bytes, top bit clear so the DER INTEGER stays positive, never zero.
  const b = randomBytes(16);
  b[0] = ((b[0] ?? 0) & 0x7f) | 0x01;
  return b.toString('hex');
}

function assertCommonName(name: string, what: string): string {
  if (typeof name !== 'string' || name.trim() === '' || name.length > 64) {
    throw new FedmmError('INVALID_ARGUMENT', `${what} ${JSON.stringify(name)} must be 1 to 64 characters`);
  }
  return name;
}

function certificatePem(cert: x509.X509Certificate): string {
  return new X509Certificate(Buffer.from(cert.rawData)).toString();
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
}

function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}
