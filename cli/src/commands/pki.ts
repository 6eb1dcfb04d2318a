import { parseArgs } from 'node:util';
import { join, relative } from 'node:path';
import { describePkiDir, initPkiDir, issueClientInDir, PkiFiles, type CertificateSummary, type PkiDirResult } from '@fedmm/pki';
import { UsageError, type Command } from '../command.js';

const DEFAULT_DIR = '.fedmm-pki';

const usage = `fedmm pki <init|issue-client|show> [options]

Development PKI for the gateway's mutual TLS (docs/PKI.md). Production takes real certificates
from Kubernetes Secrets or cert-manager instead.

  fedmm pki init [--dir DIR] [--tenant NAME ...] [--server-name NAME ...] [--force]
      Creates (or brings up to date) a CA, the gateway's server certificate for localhost,
      127.0.0.1, ::1 and each --server-name (DNS name or IP), and a client certificate per
      --tenant. Existing files that are still good are kept; --force replaces everything.
  fedmm pki issue-client [--dir DIR] --tenant NAME [--days N] [--force]
      Issues one tenant's client certificate under the directory's CA.
  fedmm pki show [--dir DIR]
      Lists each certificate with subject, SAN, validity and whether the CA issued it.

DIR defaults to ${DEFAULT_DIR}. Tenant names: 2-63 characters of a-z, 0-9 and '-'.`;

export const pkiCommand: Command = {
  name: 'pki',
  summary: 'create a development CA and issue server and tenant certificates for mTLS',
  usage,
  run: (argv) => runPki(argv, (text) => process.stdout.write(text)),
};

/** `fedmm pki` with its output sent to `write` (tests read it there). */
export async function runPki(argv: string[], write: (text: string) => void): Promise<number> {
  const out = (line = ''): void => write(`${line}\n`);
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string', default: DEFAULT_DIR },
      tenant: { type: 'string', multiple: true, default: [] },
      'server-name': { type: 'string', multiple: true, default: [] },
      force: { type: 'boolean', default: false },
      days: { type: 'string' },
    },
  });
  const [action, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  const dir = values.dir;
  switch (action) {
    case 'init': {
      if (values.days !== undefined) throw new UsageError('--days applies to issue-client');
      const result = await initPkiDir(dir, { tenants: values.tenant, serverNames: values['server-name'], force: values.force });
      printResult(out, result);
      printUsageHints(out, result);
      return 0;
    }
    case 'issue-client': {
      if (values.tenant.length !== 1) throw new UsageError('name exactly one tenant with --tenant NAME');
      if (values['server-name'].length > 0) throw new UsageError('--server-name applies to init');
      const days = values.days === undefined ? undefined : Number(values.days);
      if (days !== undefined && !(Number.isFinite(days) && days > 0)) throw new UsageError(`--days must be a positive number, not ${JSON.stringify(values.days)}`);
      const tenant = values.tenant[0] as string;
      const result = await issueClientInDir(dir, tenant, { force: values.force, ...(days !== undefined ? { validityDays: days } : {}) });
      printResult(out, result);
      printTenantHint(out, result.dir, tenant);
      return 0;
    }
    case 'show': {
      if (values.tenant.length > 0 || values['server-name'].length > 0 || values.force || values.days !== undefined) {
        throw new UsageError('show takes only --dir');
      }
      printSummaries(out, dir, describePkiDir(dir));
      return 0;
    }
    default:
      throw new UsageError(action ? `unknown pki action ${JSON.stringify(action)}: use init, issue-client or show` : 'name an action: init, issue-client or show');
  }
}

type Out = (line?: string) => void;

function printResult(out: Out, result: PkiDirResult): void {
  out(`PKI directory ${result.dir}`);
  const width = Math.max(...result.files.map((f) => f.path.length));
  for (const f of result.files) {
    const notes = [f.path.endsWith('.key') && f.action !== 'kept' ? 'mode 0600' : '', f.reason ?? ''].filter(Boolean).join('; ');
    out(`  ${f.action.padEnd(8)}  ${notes ? `${f.path.padEnd(width)}  (${notes})` : f.path}`);
  }
  for (const w of result.warnings) out(`warning: ${w}`);
}

function printUsageHints(out: Out, result: PkiDirResult): void {
  const at = (p: string): string => rel(join(result.dir, p));
  out();
  out('Gateway (mutual TLS):');
  out(`  FEDMM_TLS_CA=${at(PkiFiles.caCert)} FEDMM_TLS_CERT=${at(PkiFiles.serverCert)} FEDMM_TLS_KEY=${at(PkiFiles.serverKey)}`);
  const tenants = [...new Set(result.files.map((f) => /^clients\/(.+)\.crt$/.exec(f.path)?.[1]).filter((t): t is string => t !== undefined && t !== PkiFiles.reservedTenant))];
  for (const t of tenants) printTenantHint(out, result.dir, t);
  if (tenants.length === 0) out(`No tenants yet: fedmm pki issue-client --dir ${rel(result.dir)} --tenant NAME`);
}

function printTenantHint(out: Out, dir: string, tenant: string): void {
  const at = (p: string): string => rel(join(dir, p));
  out(`Tenant ${tenant}: CA ${at(PkiFiles.clientCaCert)}, certificate ${at(PkiFiles.clientCert(tenant))}, key ${at(PkiFiles.clientKey(tenant))}`);
}

function printSummaries(out: Out, dir: string, certs: CertificateSummary[]): void {
  out(`PKI directory ${rel(dir)}`);
  const now = Date.now();
  for (const c of certs) {
    out();
    out(`${c.path}  [${c.status}]`);
    out(`  subject  ${c.subject}`);
    out(`  issuer   ${c.issuer}`);
    out(`  SAN      ${c.subjectAltNames.length > 0 ? c.subjectAltNames.join(', ') : '-'}`);
    if (c.isCa) out('  CA       yes');
    if (c.tenant) out(`  tenant   ${c.tenant}`);
    const daysLeft = Math.floor((c.notAfter.getTime() - now) / 86_400_000);
    out(`  valid    ${c.notBefore.toISOString()} .. ${c.notAfter.toISOString()} (${daysLeft >= 0 ? `${plural(daysLeft, 'day')} left` : `expired ${plural(-daysLeft, 'day')} ago`})`);
    out(`  serial   ${c.serialNumber}`);
    out(`  sha256   ${c.fingerprint256}`);
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function rel(p: string): string {
  const r = relative(process.cwd(), p);
  return r === '' ? '.' : r.startsWith('..') ? p : r;
}
