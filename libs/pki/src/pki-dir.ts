import { randomBytes, X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { FedmmError } from '@fedmm/core';
import { createCa, DefaultValidityDays, issueClientCert, issueServerCert, publicKeysEqual, type CertificateAndKey } from './certificates.js';
import { tenantOfCertificate } from './identity.js';
import { DefaultServerNames, PkiFiles } from './layout.js';
import { assertDnsName, assertIpAddress, assertTenantName, isTenantName } from './names.js';

/** What happened to one file. */
export type PkiFileAction = 'created' | 'kept' | 'replaced';

export interface PkiFileResult {
  /** Path relative to the PKI directory. */
  readonly path: string;
  readonly action: PkiFileAction;
  /** Why a file was replaced. */
  readonly reason?: string;
}

export interface PkiDirResult {
  /** The PKI directory, absolute. */
  readonly dir: string;
  readonly files: readonly PkiFileResult[];
  /** Things the operator should act on that did not stop the run (a CA near its end, a key readable by others). */
  readonly warnings: readonly string[];
}

export interface PkiValidityDays {
  ca: number;
  server: number;
  client: number;
}

export interface InitPkiDirOptions {
  /** Tenants to issue client certificates for; tenants already under clients/ are kept up to date too. */
  tenants?: readonly string[];
  /** Extra DNS names or IP addresses for the server certificate, beyond localhost, 127.0.0.1 and ::1. */
  serverNames?: readonly string[];
  /** Replace the CA and every certificate even where the existing ones are still good. */
  force?: boolean;
  caCommonName?: string;
  serverCommonName?: string;
  validityDays?: Partial<PkiValidityDays>;
  /** The time against which existing certificates are judged (tests). */
  now?: Date;
}

export interface IssueClientInDirOptions {
  /** Replace the tenant's certificate even if the existing one is still good. */
  force?: boolean;
  validityDays?: number;
  now?: Date;
}

const DAY_MS = 86_400_000;
const CERT_MODE = 0o644;
const KEY_MODE = 0o600;
const DIR_MODE = 0o700;

/**
 * Lays out a development PKI in `dir` (ca.crt, ca.key, server.crt, server.key, clients/<tenant>.crt|.key,
 * clients/ca.crt). Idempotent: an existing CA and certificates that are still good are kept; certificates
 * are reissued when missing, issued by another CA, missing a requested name, or in the last third of
 * their lifetime. `force` replaces everything, the CA included.
 */
export async function initPkiDir(dir: string, opts: InitPkiDirOptions = {}): Promise<PkiDirResult> {
  const root = resolve(dir);
  const now = opts.now ?? new Date();
  const force = opts.force ?? false;
  const days: PkiValidityDays = { ...DefaultValidityDays, ...opts.validityDays };
  // Validate every input before writing anything, so a typo leaves the directory as it was.
  const tenants = [...new Set((opts.tenants ?? []).map(assertDirTenant))];
  const requested = splitServerNames(opts.serverNames ?? []);
  const files: PkiFileResult[] = [];
  const warnings: string[] = [];

  mkdirSync(join(root, PkiFiles.clientsDir), { recursive: true, mode: DIR_MODE });
  const { ca, result: caResult } = await ensureCa(root, { force, now, commonName: opts.caCommonName ?? 'fedmm development CA', validityDays: days.ca }, warnings);
  files.push(caResult.cert, caResult.key);

  files.push(...(await ensureServer(root, ca, { force, now, requested, commonName: opts.serverCommonName ?? 'fedmm gateway', validityDays: days.server }, warnings)));
  files.push(writeClientCaCopy(root, ca));
  const clients = [...new Set([...tenants, ...existingClientTenants(root)])].sort();
  for (const tenant of clients) {
    files.push(...(await ensureClient(root, ca, tenant, { force, now, validityDays: days.client }, warnings)));
  }
  return { dir: root, files, warnings };
}

/** Issues (or keeps, if still good and not `force`) one tenant's client certificate in a PKI directory made by initPkiDir. */
export async function issueClientInDir(dir: string, tenant: string, opts: IssueClientInDirOptions = {}): Promise<PkiDirResult> {
  const root = resolve(dir);
  assertDirTenant(tenant);
  const ca = readCa(root);
  mkdirSync(join(root, PkiFiles.clientsDir), { recursive: true, mode: DIR_MODE });
  const warnings: string[] = [];
  const files = [writeClientCaCopy(root, ca)];
  files.push(
    ...(await ensureClient(root, ca, tenant, { force: opts.force ?? false, now: opts.now ?? new Date(), validityDays: opts.validityDays ?? DefaultValidityDays.client }, warnings)),
  );
  return { dir: root, files, warnings };
}

/** One certificate as `fedmm pki show` lists it. */
export interface CertificateSummary {
  /** Path relative to the PKI directory. */
  readonly path: string;
  readonly subject: string;
  readonly issuer: string;
  readonly subjectAltNames: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly serialNumber: string;
  readonly isCa: boolean;
  readonly fingerprint256: string;
  /** The tenant a client certificate identifies, if any. */
  readonly tenant?: string;
  readonly status: 'valid' | 'expired' | 'not yet valid' | 'not issued by ca.crt';
}

/** Summarises every certificate in a PKI directory: the CA, the server certificate and each tenant's. */
export function describePkiDir(dir: string, opts: { now?: Date } = {}): CertificateSummary[] {
  const root = resolve(dir);
  const now = opts.now ?? new Date();
  const caPath = join(root, PkiFiles.caCert);
  if (!existsSync(caPath)) throw new FedmmError('NOT_FOUND', `no CA certificate at ${caPath}; run fedmm pki init --dir ${dir} first`, { dir: root });
  const ca = new X509Certificate(readFileSync(caPath));
  const paths = [PkiFiles.caCert, PkiFiles.serverCert, ...existingClientTenants(root).map(PkiFiles.clientCert)];
  return paths.filter((p) => existsSync(join(root, p))).map((p) => summarize(p, new X509Certificate(readFileSync(join(root, p))), ca, now));
}

function summarize(path: string, cert: X509Certificate, ca: X509Certificate, now: Date): CertificateSummary {
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  const tenant = cert.ca || cert.keyUsage?.includes(SERVER_AUTH) ? undefined : tenantOfCertificate(cert);
  const status: CertificateSummary['status'] = !issuedBy(cert, ca) ? 'not issued by ca.crt' : now < notBefore ? 'not yet valid' : now > notAfter ? 'expired' : 'valid';
  return {
    path,
    subject: cert.subject.split('\n').join(', '),
    issuer: cert.issuer.split('\n').join(', '),
    subjectAltNames: cert.subjectAltName ? cert.subjectAltName.split(', ') : [],
    notBefore,
    notAfter,
    serialNumber: cert.serialNumber,
    isCa: cert.ca,
    fingerprint256: cert.fingerprint256,
    ...(tenant ? { tenant } : {}),
    status,
  };
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

interface CaResult {
  ca: CertificateAndKey;
  result: { cert: PkiFileResult; key: PkiFileResult };
}

async function ensureCa(root: string, o: { force: boolean; now: Date; commonName: string; validityDays: number }, warnings: string[]): Promise<CaResult> {
  const certPath = join(root, PkiFiles.caCert);
  const keyPath = join(root, PkiFiles.caKey);
  const haveCert = existsSync(certPath);
  const haveKey = existsSync(keyPath);
  if (!o.force && haveCert && haveKey) {
    const ca = readCa(root);
    const cert = new X509Certificate(ca.certPem);
    const notAfter = new Date(cert.validTo);
    if (notAfter <= o.now) {
      throw new FedmmError(
        'FAILED_PRECONDITION',
        `the CA in ${certPath} expired at ${notAfter.toISOString()}; run again with --force to create a new CA and reissue every certificate (then hand tenants their new certificates)`,
        { notAfter: notAfter.toISOString() },
      );
    }
    if (inLastThird(cert, o.now)) {
      warnings.push(`the CA expires at ${notAfter.toISOString()}; plan a rotation (docs/PKI.md, "Rotation")`);
    }
    warnIfReadable(keyPath, PkiFiles.caKey, warnings);
    return { ca, result: { cert: { path: PkiFiles.caCert, action: 'kept' }, key: { path: PkiFiles.caKey, action: 'kept' } } };
  }
  if (!o.force && haveCert !== haveKey) {
    const missing = haveCert ? PkiFiles.caKey : PkiFiles.caCert;
    throw new FedmmError(
      'FAILED_PRECONDITION',
      `${root} has ${haveCert ? PkiFiles.caCert : PkiFiles.caKey} but no ${missing}; restore ${missing}, or run again with --force to create a new CA and reissue every certificate`,
      { dir: root },
    );
  }
  const ca = await createCa({ commonName: o.commonName, validityDays: o.validityDays });
  const action: PkiFileAction = haveCert || haveKey ? 'replaced' : 'created';
  const reason = action === 'replaced' ? 'forced' : undefined;
  writeAtomic(keyPath, ca.keyPem, KEY_MODE);
  writeAtomic(certPath, ca.certPem, CERT_MODE);
  return {
    ca,
    result: {
      cert: { path: PkiFiles.caCert, action, ...(reason ? { reason } : {}) },
      key: { path: PkiFiles.caKey, action, ...(reason ? { reason } : {}) },
    },
  };
}

function readCa(root: string): CertificateAndKey {
  const certPath = join(root, PkiFiles.caCert);
  const keyPath = join(root, PkiFiles.caKey);
  if (!existsSync(certPath) || !existsSync(keyPath)) {
    throw new FedmmError('FAILED_PRECONDITION', `no CA in ${root} (${PkiFiles.caCert} and ${PkiFiles.caKey}); run fedmm pki init --dir ${root} first`, { dir: root });
  }
  const certPem = readFileSync(certPath, 'utf8');
  const keyPem = readFileSync(keyPath, 'utf8');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new FedmmError('DATA_LOSS', `${certPath} is not a PEM X.509 certificate; restore it, or run fedmm pki init with --force to start a new CA`, { path: certPath });
  }
  let matches: boolean;
  try {
    matches = publicKeysEqual(cert.publicKey, createPublicKey(createPrivateKey(keyPem)));
  } catch {
    throw new FedmmError('DATA_LOSS', `${keyPath} is not a PEM private key; restore it, or run fedmm pki init with --force to start a new CA`, { path: keyPath });
  }
  if (!matches || !cert.ca) {
    throw new FedmmError(
      'FAILED_PRECONDITION',
      `${PkiFiles.caKey} and ${PkiFiles.caCert} in ${root} do not form a CA (${cert.ca ? 'the key belongs to another certificate' : 'the certificate is not a CA'}); restore the pair, or run fedmm pki init with --force`,
      { dir: root },
    );
  }
  return { certPem, keyPem };
}

async function ensureServer(
  root: string,
  ca: CertificateAndKey,
  o: { force: boolean; now: Date; requested: ServerNames; commonName: string; validityDays: number },
  warnings: string[],
): Promise<PkiFileResult[]> {
  const wanted = {
    dnsNames: [...new Set([...DefaultServerNames.dnsNames, ...o.requested.dnsNames])],
    ipAddresses: [...new Set([...DefaultServerNames.ipAddresses, ...o.requested.ipAddresses])],
  };
  const existing = o.force ? undefined : readPair(root, PkiFiles.serverCert, PkiFiles.serverKey);
  let reason: string | undefined;
  if (existing) {
    const have = parseServerNames(existing.cert.subjectAltName ?? '');
    const missing = [...wanted.dnsNames.filter((n) => !have.dnsNames.includes(n)), ...wanted.ipAddresses.filter((n) => !have.ipAddresses.includes(n))];
    reason = staleReason(existing, ca, o.now) ?? (missing.length > 0 ? `does not cover ${missing.join(', ')}` : undefined);
    if (reason === undefined) {
      warnIfReadable(join(root, PkiFiles.serverKey), PkiFiles.serverKey, warnings);
      return [
        { path: PkiFiles.serverCert, action: 'kept' },
        { path: PkiFiles.serverKey, action: 'kept' },
      ];
    }
    // Names are only ever added on renewal, so a renewal never drops a name some client dials.
    wanted.dnsNames = [...new Set([...wanted.dnsNames, ...have.dnsNames])];
    wanted.ipAddresses = [...new Set([...wanted.ipAddresses, ...have.ipAddresses])];
  }
  const validityDays = withinCaLifetime(ca, o.validityDays, PkiFiles.serverCert, warnings);
  const issued = await issueServerCert({ ca, commonName: o.commonName, dnsNames: wanted.dnsNames, ipAddresses: wanted.ipAddresses, validityDays });
  return writePair(root, PkiFiles.serverCert, PkiFiles.serverKey, issued, reason, o.force);
}

async function ensureClient(
  root: string,
  ca: CertificateAndKey,
  tenant: string,
  o: { force: boolean; now: Date; validityDays: number },
  warnings: string[],
): Promise<PkiFileResult[]> {
  const certPath = PkiFiles.clientCert(tenant);
  const keyPath = PkiFiles.clientKey(tenant);
  const existing = o.force ? undefined : readPair(root, certPath, keyPath);
  let reason: string | undefined;
  if (existing) {
    const named = tenantOfCertificate(existing.cert);
    reason = staleReason(existing, ca, o.now) ?? (named !== tenant ? `identifies ${named ?? 'no tenant'}, not ${tenant}` : undefined);
    if (reason === undefined) {
      warnIfReadable(join(root, keyPath), keyPath, warnings);
      return [
        { path: certPath, action: 'kept' },
        { path: keyPath, action: 'kept' },
      ];
    }
  }
  const issued = await issueClientCert({ ca, tenant, validityDays: withinCaLifetime(ca, o.validityDays, certPath, warnings) });
  return writePair(root, certPath, keyPath, issued, reason, o.force);
}

interface ExistingPair {
  cert: X509Certificate;
  keyPem: string;
}

// Returns undefined when either file is missing or unreadable: the pair is then simply issued anew.
function readPair(root: string, certPath: string, keyPath: string): ExistingPair | undefined {
  try {
    return { cert: new X509Certificate(readFileSync(join(root, certPath))), keyPem: readFileSync(join(root, keyPath), 'utf8') };
  } catch {
    return undefined;
  }
}

// A certificate cannot usefully outlive its CA; in a directory the CA's end caps every certificate, with a warning.
function withinCaLifetime(ca: CertificateAndKey, days: number, path: string, warnings: string[]): number {
  const caEnd = new Date(new X509Certificate(ca.certPem).validTo);
  // The margin covers the backdated notBefore and rounding to whole seconds.
  const left = (caEnd.getTime() - Date.now() - 60_000) / DAY_MS;
  if (days <= left) return days;
  warnings.push(`${path} is valid only until ${caEnd.toISOString()}, when the CA expires; rotate the CA (docs/PKI.md, "Rotation")`);
  return left;
}

function staleReason(existing: ExistingPair, ca: CertificateAndKey, now: Date): string | undefined {
  if (!issuedBy(existing.cert, new X509Certificate(ca.certPem))) return 'issued by another CA';
  try {
    if (!publicKeysEqual(existing.cert.publicKey, createPublicKey(createPrivateKey(existing.keyPem)))) return 'the key belongs to another certificate';
  } catch {
    return 'the key is not a PEM private key';
  }
  const notAfter = new Date(existing.cert.validTo);
  if (notAfter <= now) return `expired at ${notAfter.toISOString()}`;
  if (inLastThird(existing.cert, now)) return `renewal due: expires at ${notAfter.toISOString()}`;
  return undefined;
}

function writePair(root: string, certPath: string, keyPath: string, issued: CertificateAndKey, reason: string | undefined, forced: boolean): PkiFileResult[] {
  const existed = existsSync(join(root, certPath)) || existsSync(join(root, keyPath));
  const why = reason ?? (forced && existed ? 'forced' : existed ? 'incomplete or unreadable' : undefined);
  const action: PkiFileAction = existed ? 'replaced' : 'created';
  writeAtomic(join(root, keyPath), issued.keyPem, KEY_MODE);
  writeAtomic(join(root, certPath), issued.certPem, CERT_MODE);
  return [
    { path: certPath, action, ...(why ? { reason: why } : {}) },
    { path: keyPath, action, ...(why ? { reason: why } : {}) },
  ];
}

function writeClientCaCopy(root: string, ca: CertificateAndKey): PkiFileResult {
  const path = join(root, PkiFiles.clientCaCert);
  let current: string | undefined;
  try {
    current = readFileSync(path, 'utf8');
  } catch {
    current = undefined;
  }
  if (current === ca.certPem) return { path: PkiFiles.clientCaCert, action: 'kept' };
  writeAtomic(path, ca.certPem, CERT_MODE);
  return current === undefined ? { path: PkiFiles.clientCaCert, action: 'created' } : { path: PkiFiles.clientCaCert, action: 'replaced', reason: 'differs from ca.crt' };
}

function existingClientTenants(root: string): string[] {
  let names: string[];
  try {
    names = readdirSync(join(root, PkiFiles.clientsDir));
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.crt'))
    .map((n) => n.slice(0, -'.crt'.length))
    .filter((t) => isTenantName(t) && t !== PkiFiles.reservedTenant)
    .sort();
}

function assertDirTenant(tenant: string): string {
  assertTenantName(tenant);
  if (tenant === PkiFiles.reservedTenant) {
    throw new FedmmError('INVALID_ARGUMENT', `a PKI directory cannot hold a tenant named ${JSON.stringify(tenant)}: its certificate would overwrite ${PkiFiles.clientCaCert}; choose another name`, { tenant });
  }
  return tenant;
}

function issuedBy(cert: X509Certificate, ca: X509Certificate): boolean {
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

// cert-manager's default: renew once two thirds of the lifetime have passed.
function inLastThird(cert: X509Certificate, now: Date): boolean {
  const from = new Date(cert.validFrom).getTime();
  const to = new Date(cert.validTo).getTime();
  return to - now.getTime() < (to - from) / 3;
}

function warnIfReadable(path: string, name: string, warnings: string[]): void {
  if (process.platform === 'win32') return;
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) warnings.push(`${name} is readable by other users (mode ${mode.toString(8).padStart(4, '0')}); run chmod 600 ${path}`);
}

interface ServerNames {
  dnsNames: string[];
  ipAddresses: string[];
}

function splitServerNames(names: readonly string[]): ServerNames {
  const out: ServerNames = { dnsNames: [], ipAddresses: [] };
  for (const n of names) {
    if (isIP(n) !== 0) out.ipAddresses.push(normalizeIp(assertIpAddress(n)));
    else out.dnsNames.push(assertDnsName(n));
  }
  return out;
}

function parseServerNames(san: string): ServerNames {
  const out: ServerNames = { dnsNames: [], ipAddresses: [] };
  for (const entry of san.split(', ')) {
    if (entry.startsWith('DNS:')) out.dnsNames.push(entry.slice(4).toLowerCase());
    else if (entry.startsWith('IP Address:')) out.ipAddresses.push(normalizeIp(entry.slice('IP Address:'.length)));
  }
  return out;
}

// node prints IPv6 SANs in full, uppercase form (0:0:0:0:0:0:0:1); compare on one canonical form.
function normalizeIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip.toLowerCase();
  }
}

function writeAtomic(path: string, content: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true, mode: DIR_MODE });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, content, { mode, flag: 'wx' });
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new FedmmError('FAILED_PRECONDITION', `cannot write ${path}: ${(e as Error).message}`, { path });
  }
}
