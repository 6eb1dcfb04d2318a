import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { X509Certificate } from 'node:crypto';
import { FedmmError } from '@fedmm/core';
import { createCa, issueClientCert } from './certificates.js';
import { readClientTlsFiles, readServerTlsFiles } from './credentials.js';
import { describePkiDir, initPkiDir, issueClientInDir, type PkiDirResult } from './pki-dir.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedmm-pki-dir-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const read = (p: string): string => readFileSync(join(dir, p), 'utf8');
const mode = (p: string): number => statSync(join(dir, p)).mode & 0o777;
const actions = (r: PkiDirResult): Record<string, string> => Object.fromEntries(r.files.map((f) => [f.path, f.reason ? `${f.action} (${f.reason})` : f.action]));
const san = (p: string): string => new X509Certificate(read(p)).subjectAltName ?? '';

function fedmmError(code: string, pattern: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof FedmmError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  };
}

describe('initPkiDir', () => {
  test('lays out the CA, the server pair, the tenants and the CA copy, keys readable by the owner only', async () => {
    const r = await initPkiDir(dir, { tenants: ['acme', 'globex'], serverNames: ['gateway.fedmm.svc', '10.0.0.7'] });
    assert.deepEqual(actions(r), {
      'ca.crt': 'created',
      'ca.key': 'created',
      'server.crt': 'created',
      'server.key': 'created',
      'clients/ca.crt': 'created',
      'clients/acme.crt': 'created',
      'clients/acme.key': 'created',
      'clients/globex.crt': 'created',
      'clients/globex.key': 'created',
    });
    assert.deepEqual(readdirSync(dir).sort(), ['ca.crt', 'ca.key', 'clients', 'server.crt', 'server.key']);
    assert.deepEqual(readdirSync(join(dir, 'clients')).sort(), ['acme.crt', 'acme.key', 'ca.crt', 'globex.crt', 'globex.key']);
    for (const key of ['ca.key', 'server.key', 'clients/acme.key', 'clients/globex.key']) assert.equal(mode(key), 0o600, key);
    assert.equal(read('clients/ca.crt'), read('ca.crt'));
    assert.equal(san('server.crt'), 'DNS:localhost, DNS:gateway.fedmm.svc, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:10.0.0.7');
    assert.equal(san('clients/globex.crt'), 'URI:spiffe://fedmm/tenant/globex');
    const ca = new X509Certificate(read('ca.crt'));
    for (const c of ['server.crt', 'clients/acme.crt']) assert.ok(new X509Certificate(read(c)).verify(ca.publicKey), c);
    assert.deepEqual(r.warnings, []);
  });

  test('is idempotent: a second run keeps every file byte for byte', async () => {
    await initPkiDir(dir, { tenants: ['acme'] });
    const before = ['ca.crt', 'ca.key', 'server.crt', 'server.key', 'clients/acme.crt', 'clients/acme.key'].map(read);
    const r = await initPkiDir(dir, { tenants: ['acme'] });
    assert.ok(r.files.every((f) => f.action === 'kept'), JSON.stringify(r.files));
    assert.deepEqual(['ca.crt', 'ca.key', 'server.crt', 'server.key', 'clients/acme.crt', 'clients/acme.key'].map(read), before);
  });

  test('a later run adds tenants and server names under the same CA, keeping what it already issued', async () => {
    await initPkiDir(dir, { tenants: ['acme'], serverNames: ['gw.example'] });
    const ca = read('ca.crt');
    const acme = read('clients/acme.crt');
    const r = await initPkiDir(dir, { tenants: ['globex'], serverNames: ['gw2.example'] });
    assert.equal(read('ca.crt'), ca);
    assert.equal(read('clients/acme.crt'), acme);
    assert.equal(actions(r)['clients/globex.crt'], 'created');
    assert.equal(actions(r)['server.crt'], 'replaced (does not cover gw2.example)');
    // Renewal only adds names: gw.example, asked for last time, stays.
    assert.match(san('server.crt'), /DNS:gw2\.example/);
    assert.match(san('server.crt'), /DNS:gw\.example/);
  });

  test('force replaces the CA and reissues every certificate, tenants from earlier runs included', async () => {
    await initPkiDir(dir, { tenants: ['acme', 'globex'] });
    const oldCa = read('ca.crt');
    const r = await initPkiDir(dir, { tenants: ['acme'], force: true });
    assert.notEqual(read('ca.crt'), oldCa);
    assert.equal(read('clients/ca.crt'), read('ca.crt'));
    assert.equal(actions(r)['ca.crt'], 'replaced (forced)');
    assert.equal(actions(r)['clients/globex.crt'], 'replaced (forced)');
    const ca = new X509Certificate(read('ca.crt'));
    for (const c of ['server.crt', 'clients/acme.crt', 'clients/globex.crt']) assert.ok(new X509Certificate(read(c)).verify(ca.publicKey), c);
  });

  test('reissues certificates that expired, are due for renewal, come from another CA or lost their key', async () => {
    await initPkiDir(dir, { tenants: ['acme', 'globex', 'initech', 'hooli'] });
    const ca = { certPem: read('ca.crt'), keyPem: read('ca.key') };
    const day = 86_400_000;
    const expired = await issueClientCert({ ca, tenant: 'acme', notBefore: new Date(Date.now() - 10 * day), validityDays: 1 });
    const ageing = await issueClientCert({ ca, tenant: 'globex', notBefore: new Date(Date.now() - 8 * day), validityDays: 10 });
    const foreign = await issueClientCert({ ca: await createCa({ commonName: 'other' }), tenant: 'initech' });
    writeFileSync(join(dir, 'clients/acme.crt'), expired.certPem);
    writeFileSync(join(dir, 'clients/acme.key'), expired.keyPem);
    writeFileSync(join(dir, 'clients/globex.crt'), ageing.certPem);
    writeFileSync(join(dir, 'clients/globex.key'), ageing.keyPem);
    writeFileSync(join(dir, 'clients/initech.crt'), foreign.certPem);
    writeFileSync(join(dir, 'clients/initech.key'), foreign.keyPem);
    unlinkSync(join(dir, 'clients/hooli.key'));
    const r = actions(await initPkiDir(dir));
    assert.match(r['clients/acme.crt'] ?? '', /^replaced \(expired at /);
    assert.match(r['clients/globex.crt'] ?? '', /^replaced \(renewal due: expires at /);
    assert.equal(r['clients/initech.crt'], 'replaced (issued by another CA)');
    assert.equal(r['clients/hooli.crt'], 'replaced (incomplete or unreadable)');
    for (const t of ['acme', 'globex', 'initech', 'hooli']) {
      const m = readClientTlsFiles(dir, t);
      assert.ok(new X509Certificate(m.certPem).verify(new X509Certificate(m.caPem).publicKey), t);
    }
    assert.deepEqual(describePkiDir(dir).map((c) => c.status), ['valid', 'valid', 'valid', 'valid', 'valid', 'valid']);
  });

  test('refuses a half CA, an expired CA, bad names and the reserved tenant name without touching the directory', async () => {
    await initPkiDir(dir, { tenants: ['acme'] });
    await assert.rejects(initPkiDir(dir, { tenants: ['Acme Corp'] }), fedmmError('INVALID_ARGUMENT', /tenant name "Acme Corp" is not valid/));
    await assert.rejects(initPkiDir(dir, { serverNames: ['bad_name!'] }), fedmmError('INVALID_ARGUMENT', /not a valid DNS name/));
    await assert.rejects(initPkiDir(dir, { tenants: ['ca'] }), fedmmError('INVALID_ARGUMENT', /would overwrite clients\/ca\.crt/));
    assert.deepEqual(readdirSync(join(dir, 'clients')).sort(), ['acme.crt', 'acme.key', 'ca.crt']);

    unlinkSync(join(dir, 'ca.key'));
    await assert.rejects(initPkiDir(dir), fedmmError('FAILED_PRECONDITION', /has ca\.crt but no ca\.key; restore ca\.key, or run again with --force/));
    await initPkiDir(dir, { force: true });

    const old = await createCa({ commonName: 'old', notBefore: new Date(Date.now() - 20 * 86_400_000), validityDays: 10 });
    writeFileSync(join(dir, 'ca.crt'), old.certPem);
    writeFileSync(join(dir, 'ca.key'), old.keyPem);
    await assert.rejects(initPkiDir(dir), fedmmError('FAILED_PRECONDITION', /the CA in .* expired at .*--force/));
  });

  test('warns about a CA near its end and a key others can read, and caps certificates at the CA end', async () => {
    const ageing = await createCa({ commonName: 'ageing', notBefore: new Date(Date.now() - 300 * 86_400_000), validityDays: 400 });
    writeFileSync(join(dir, 'ca.crt'), ageing.certPem);
    writeFileSync(join(dir, 'ca.key'), ageing.keyPem);
    chmodSync(join(dir, 'ca.key'), 0o644);
    const r = await initPkiDir(dir, { tenants: ['acme'] });
    assert.equal(actions(r)['ca.crt'], 'kept');
    const caEnd = new Date(new X509Certificate(read('ca.crt')).validTo);
    for (const c of ['server.crt', 'clients/acme.crt']) {
      const end = new Date(new X509Certificate(read(c)).validTo);
      assert.ok(end <= caEnd && end.getTime() > caEnd.getTime() - 3_600_000, `${c} ends ${end.toISOString()}, CA ${caEnd.toISOString()}`);
      assert.ok(r.warnings.some((w) => w.startsWith(`${c} is valid only until ${caEnd.toISOString()}`)), r.warnings.join('\n'));
    }
    assert.ok(r.warnings.some((w) => /the CA expires at .*plan a rotation/.test(w)), r.warnings.join('\n'));
    assert.ok(r.warnings.some((w) => /ca\.key is readable by other users \(mode 0644\)/.test(w)), r.warnings.join('\n'));
  });
});

describe('issueClientInDir', () => {
  test('issues a tenant under the directory CA, keeps it on a repeat, replaces it with force', async () => {
    await initPkiDir(dir);
    const first = await issueClientInDir(dir, 'acme');
    assert.deepEqual(actions(first), { 'clients/ca.crt': 'kept', 'clients/acme.crt': 'created', 'clients/acme.key': 'created' });
    const cert = read('clients/acme.crt');
    assert.equal(actions(await issueClientInDir(dir, 'acme'))['clients/acme.crt'], 'kept');
    assert.equal(read('clients/acme.crt'), cert);
    assert.equal(actions(await issueClientInDir(dir, 'acme', { force: true }))['clients/acme.crt'], 'replaced (forced)');
    assert.notEqual(read('clients/acme.crt'), cert);
    assert.equal(mode('clients/acme.key'), 0o600);
  });

  test('needs a CA in the directory', async () => {
    await assert.rejects(issueClientInDir(dir, 'acme'), fedmmError('FAILED_PRECONDITION', /no CA in .*run fedmm pki init --dir/));
    await assert.rejects(issueClientInDir(dir, 'ACME'), fedmmError('INVALID_ARGUMENT', /tenant name/));
  });
});

describe('describePkiDir', () => {
  test('lists the CA, the server and each tenant with subject, SANs, validity and status', async () => {
    await initPkiDir(dir, { tenants: ['globex', 'acme'] });
    const list = describePkiDir(dir);
    assert.deepEqual(list.map((c) => c.path), ['ca.crt', 'server.crt', 'clients/acme.crt', 'clients/globex.crt']);
    const [ca, server, acme] = list;
    assert.equal(ca?.isCa, true);
    assert.equal(ca?.subject, 'CN=fedmm development CA');
    assert.equal(server?.subject, 'CN=fedmm gateway');
    assert.deepEqual(server?.subjectAltNames, ['DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1']);
    assert.equal(server?.tenant, undefined);
    assert.equal(acme?.tenant, 'acme');
    assert.deepEqual(acme?.subjectAltNames, ['URI:spiffe://fedmm/tenant/acme']);
    assert.ok(list.every((c) => c.status === 'valid'));
    assert.equal(describePkiDir(dir, { now: new Date(Date.now() + 400 * 86_400_000) })[2]?.status, 'expired');
  });

  test('flags a certificate the directory CA did not issue', async () => {
    await initPkiDir(dir, { tenants: ['acme'] });
    const foreign = await issueClientCert({ ca: await createCa({ commonName: 'other' }), tenant: 'acme' });
    writeFileSync(join(dir, 'clients/acme.crt'), foreign.certPem);
    assert.equal(describePkiDir(dir).find((c) => c.path === 'clients/acme.crt')?.status, 'not issued by ca.crt');
  });

  test('says how to create a directory that has no CA', () => {
    assert.throws(() => describePkiDir(dir), fedmmError('NOT_FOUND', /run fedmm pki init --dir/));
  });
});

test('readServerTlsFiles and readClientTlsFiles name the missing file', async () => {
  assert.throws(() => readServerTlsFiles(dir), fedmmError('NOT_FOUND', /no CA certificate at .*ca\.crt; create it with fedmm pki init/));
  await initPkiDir(dir);
  assert.throws(() => readClientTlsFiles(dir, 'acme'), fedmmError('NOT_FOUND', /no client certificate of acme at .*clients\/acme\.crt/));
});
