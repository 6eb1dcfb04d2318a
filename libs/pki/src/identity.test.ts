import assert from 'node:assert/strict';
import { webcrypto, X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { before, describe, test } from 'node:test';
import { FedmmError } from '@fedmm/core';
import { createCa, issueClientCert, type CertificateAndKey } from './certificates.js';
import { parseSubjectAltNames, tenantFromCall, tenantFromPeerCertificate, tenantOfCertificate } from './identity.js';
import { x509 } from './x509.js';

// A self-signed certificate with exactly the subject and SAN URIs given, as a foreign CA might issue.
async function certificateWith(subject: string, uris: string[]): Promise<string> {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: subject,
    keys: keys as never,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: uris.length ? [new x509.SubjectAlternativeNameExtension(uris.map((value) => ({ type: 'url' as const, value })))] : [],
  });
  return cert.toString('pem');
}

function unauthenticated(pattern: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof FedmmError);
    assert.equal(e.code, 'UNAUTHENTICATED');
    assert.match(e.message, pattern);
    return true;
  };
}

describe('tenantFromPeerCertificate', () => {
  let ca: CertificateAndKey;
  let acme: CertificateAndKey;
  before(async () => {
    ca = await createCa({ commonName: 'test CA' });
    acme = await issueClientCert({ ca, tenant: 'acme' });
  });

  test('reads an issued certificate as PEM, crypto.X509Certificate and node TLS peer certificate', () => {
    const cert = new X509Certificate(acme.certPem);
    assert.equal(tenantFromPeerCertificate(acme.certPem), 'acme');
    assert.equal(tenantFromPeerCertificate(cert), 'acme');
    assert.equal(tenantFromPeerCertificate(cert.toLegacyObject()), 'acme');
  });

  test('prefers the SPIFFE SAN URI over the CN', async () => {
    const pem = await certificateWith('CN=someone-else', ['spiffe://fedmm/tenant/acme']);
    assert.equal(tenantFromPeerCertificate(pem), 'acme');
    const peer = { subject: { CN: 'someone-else' }, subjectaltname: 'DNS:x.example, URI:spiffe://fedmm/tenant/acme' } as unknown as PeerCertificate;
    assert.equal(tenantFromPeerCertificate(peer), 'acme');
  });

  test('falls back to the CN when the certificate has no SPIFFE ID', async () => {
    assert.equal(tenantFromPeerCertificate(await certificateWith('O=Acme Corp, CN=acme', [])), 'acme');
    assert.equal(tenantFromPeerCertificate(await certificateWith('CN=acme', ['https://acme.example/agent'])), 'acme');
    assert.equal(tenantFromPeerCertificate({ subject: { CN: 'globex' } } as unknown as PeerCertificate), 'globex');
  });

  test('refuses certificates that name no tenant, or not unambiguously', async () => {
    assert.throws(() => tenantFromPeerCertificate(undefined), unauthenticated(/no client certificate was presented/));
    assert.throws(() => tenantFromPeerCertificate({} as PeerCertificate), unauthenticated(/no client certificate was presented/));
    assert.throws(() => tenantFromPeerCertificate('not a certificate'), unauthenticated(/not a PEM X.509 certificate/));
    const noCn = await certificateWith('O=fedmm tenants', []);
    assert.throws(() => tenantFromPeerCertificate(noCn), unauthenticated(/neither .* SAN URI nor a subject CN/));
    const companyCn = await certificateWith('CN=Acme Corp', []);
    assert.throws(() => tenantFromPeerCertificate(companyCn), unauthenticated(/CN "Acme Corp" is not a valid tenant name/));
    const twoTenants = await certificateWith('CN=acme', ['spiffe://fedmm/tenant/acme', 'spiffe://fedmm/tenant/globex']);
    assert.throws(() => tenantFromPeerCertificate(twoTenants), unauthenticated(/several tenants \(acme, globex\)/));
    const badUri = await certificateWith('CN=acme', ['spiffe://fedmm/tenant/Bad_Name']);
    assert.throws(() => tenantFromPeerCertificate(badUri), unauthenticated(/does not name a valid tenant/));
    assert.throws(() => tenantFromPeerCertificate({ subject: { CN: ['acme', 'globex'] } } as unknown as PeerCertificate), unauthenticated(/several CNs/));
  });

  test('a certificate with another SPIFFE identity is not a tenant, whatever its CN', async () => {
    for (const id of ['spiffe://fedmm/service/aggregator', 'spiffe://other-domain/tenant/acme']) {
      const other = await certificateWith('CN=acme', [id]);
      assert.throws(() => tenantFromPeerCertificate(other), unauthenticated(/is not a tenant identity/), id);
    }
  });

  test('a SAN value that embeds ", URI:spiffe://..." cannot pass for a second entry', async () => {
    const pem = await certificateWith('CN=Mallory Inc', ['https://x.example/?a=1, URI:spiffe://fedmm/tenant/acme']);
    const sans = parseSubjectAltNames(new X509Certificate(pem).subjectAltName ?? '');
    assert.deepEqual(sans, [{ type: 'URI', value: 'https://x.example/?a=1, URI:spiffe://fedmm/tenant/acme' }]);
    assert.throws(() => tenantFromPeerCertificate(pem), unauthenticated(/CN "Mallory Inc" is not a valid tenant name/));
  });

  test('tenantOfCertificate returns undefined instead of throwing', async () => {
    assert.equal(tenantOfCertificate(new X509Certificate(acme.certPem)), 'acme');
    assert.equal(tenantOfCertificate(new X509Certificate(await certificateWith('CN=Not A Tenant', []))), undefined);
  });
});

test('parseSubjectAltNames reads node subjectAltName text, quoted values included', () => {
  assert.deepEqual(parseSubjectAltNames(''), []);
  assert.deepEqual(parseSubjectAltNames('DNS:localhost, IP Address:127.0.0.1, URI:spiffe://fedmm/tenant/acme'), [
    { type: 'DNS', value: 'localhost' },
    { type: 'IP Address', value: '127.0.0.1' },
    { type: 'URI', value: 'spiffe://fedmm/tenant/acme' },
  ]);
  assert.deepEqual(parseSubjectAltNames('URI:"a, \\"b\\"", DNS:c'), [
    { type: 'URI', value: 'a, "b"' },
    { type: 'DNS', value: 'c' },
  ]);
});

describe('tenantFromCall', () => {
  test('reads the verified peer certificate from the auth context', async () => {
    const pem = await certificateWith('CN=acme', ['spiffe://fedmm/tenant/acme']);
    const peer = new X509Certificate(pem).toLegacyObject();
    assert.equal(tenantFromCall({ getAuthContext: () => ({ transportSecurityType: 'ssl', sslPeerCertificate: peer }) }), 'acme');
  });

  test('refuses calls without a verified client certificate', () => {
    for (const ctx of [{}, null, { transportSecurityType: 'ssl' }, { transportSecurityType: 'insecure' }]) {
      assert.throws(() => tenantFromCall({ getAuthContext: () => ctx }), unauthenticated(/without a verified client certificate/), JSON.stringify(ctx));
    }
  });

  test('says which grpc-js is needed when the call has no getAuthContext', () => {
    assert.throws(() => tenantFromCall({}), (e: unknown) => e instanceof FedmmError && e.code === 'INTERNAL' && /1\.13 or later/.test(e.message));
  });
});
