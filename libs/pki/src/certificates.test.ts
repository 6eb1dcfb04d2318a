import assert from 'node:assert/strict';
import { createPrivateKey, sign, verify, webcrypto, X509Certificate } from 'node:crypto';
import { checkServerIdentity } from 'node:tls';
import { before, describe, test } from 'node:test';
import { FedmmError } from '@fedmm/core';
import { createCa, issueClientCert, issueServerCert, type CertificateAndKey } from './certificates.js';
import { x509 } from './x509.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

function ext<T extends x509.Extension>(pem: string, type: new (raw: ArrayBuffer) => T): T {
  const e = new x509.X509Certificate(pem).getExtension<T>(type as never);
  assert.ok(e, `certificate lacks ${type.name}`);
  return e;
}

function rejects(code: string, pattern: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof FedmmError, `expected a FedmmError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  };
}

describe('certificate issuance', () => {
  let ca: CertificateAndKey;
  let server: CertificateAndKey;
  let client: CertificateAndKey;
  before(async () => {
    ca = await createCa({ commonName: 'fedmm test CA', validityDays: 30 });
    server = await issueServerCert({ ca, commonName: 'fedmm gateway', dnsNames: ['localhost', 'gateway.fedmm.svc'], ipAddresses: ['127.0.0.1', '::1'], validityDays: 10 });
    client = await issueClientCert({ ca, tenant: 'acme-robotics', validityDays: 10 });
  });

  test('the CA is EC P-256, self-signed, CA:true pathLen 0 (critical), keyCertSign+cRLSign, with a subject key id', () => {
    const cert = new X509Certificate(ca.certPem);
    assert.equal(cert.subject, 'CN=fedmm test CA');
    assert.ok(cert.ca);
    assert.ok(cert.verify(cert.publicKey), 'self-signed');
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const bc = ext(ca.certPem, x509.BasicConstraintsExtension);
    assert.deepEqual([bc.ca, bc.pathLength, bc.critical], [true, 0, true]);
    const ku = ext(ca.certPem, x509.KeyUsagesExtension);
    assert.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    assert.ok(ku.critical);
    assert.match(ext(ca.certPem, x509.SubjectKeyIdentifierExtension).keyId, /^[0-9a-f]{40}$/);
    assert.equal((new x509.X509Certificate(ca.certPem).signatureAlgorithm as unknown as { name: string }).name, 'ECDSA');
    const days = (new Date(cert.validTo).getTime() - new Date(cert.validFrom).getTime()) / 86_400_000;
    assert.equal(days, 30);
  });

  test('keys are PKCS#8 PEM that node:crypto loads', () => {
    for (const { keyPem } of [ca, server, client]) {
      assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
      assert.equal(createPrivateKey(keyPem).asymmetricKeyType, 'ec');
    }
  });

  test('the server certificate carries its SANs, serverAuth only, digitalSignature, and the CA key id', () => {
    const cert = new X509Certificate(server.certPem);
    assert.ok(cert.checkIssued(new X509Certificate(ca.certPem)) && cert.verify(new X509Certificate(ca.certPem).publicKey));
    assert.equal(cert.ca, false);
    assert.equal(cert.subjectAltName, 'DNS:localhost, DNS:gateway.fedmm.svc, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.deepEqual(cert.keyUsage, [SERVER_AUTH]);
    assert.equal(ext(server.certPem, x509.KeyUsagesExtension).usages, x509.KeyUsageFlags.digitalSignature);
    assert.equal(ext(server.certPem, x509.AuthorityKeyIdentifierExtension).keyId, ext(ca.certPem, x509.SubjectKeyIdentifierExtension).keyId);
  });

  test('the server certificate passes hostname verification for localhost, 127.0.0.1 and ::1 only', () => {
    const peer = new X509Certificate(server.certPem).toLegacyObject();
    for (const host of ['localhost', 'gateway.fedmm.svc', '127.0.0.1', '::1']) assert.equal(checkServerIdentity(host, peer), undefined, host);
    for (const host of ['example.com', '10.0.0.1']) assert.ok(checkServerIdentity(host, peer) instanceof Error, host);
  });

  test('the client certificate names its tenant in CN, O and a SPIFFE SAN URI, clientAuth only', () => {
    const cert = new X509Certificate(client.certPem);
    assert.equal(cert.subject, 'O=fedmm tenants\nCN=acme-robotics');
    assert.equal(cert.subjectAltName, 'URI:spiffe://fedmm/tenant/acme-robotics');
    assert.deepEqual(cert.keyUsage, [CLIENT_AUTH]);
    assert.equal(ext(client.certPem, x509.AuthorityKeyIdentifierExtension).keyId, ext(ca.certPem, x509.SubjectKeyIdentifierExtension).keyId);
    assert.ok(cert.verify(new X509Certificate(ca.certPem).publicKey));
  });

  test('a client key signs and its certificate verifies with node:crypto (consortium terms acceptance)', () => {
    const message = Buffer.from('fedmm.terms.acceptance/v1 task-7 v1');
    const signature = sign('sha256', message, client.keyPem);
    const publicKey = new X509Certificate(client.certPem).publicKey;
    assert.ok(verify('sha256', message, publicKey, signature));
    assert.equal(verify('sha256', Buffer.from('other terms'), publicKey, signature), false);
  });

  test('every certificate gets its own key and a positive random serial', async () => {
    const again = await issueClientCert({ ca, tenant: 'acme-robotics', validityDays: 10 });
    assert.notEqual(again.keyPem, client.keyPem);
    const serials = [ca, server, client, again].map((c) => new X509Certificate(c.certPem).serialNumber);
    assert.equal(new Set(serials).size, 4);
    for (const s of serials) assert.ok(Number.parseInt(s.slice(0, 2), 16) < 0x80 && /[1-9A-F]/.test(s), s);
  });

  test('notBefore and validityDays set the validity window exactly', async () => {
    const notBefore = new Date('2030-01-01T00:00:00Z');
    const c = await issueClientCert({ ca: await createCa({ commonName: 'ca', notBefore: new Date('2029-01-01T00:00:00Z'), validityDays: 3650 }), tenant: 'acme', notBefore, validityDays: 2 });
    const cert = new X509Certificate(c.certPem);
    assert.equal(new Date(cert.validFrom).toISOString(), '2030-01-01T00:00:00.000Z');
    assert.equal(new Date(cert.validTo).toISOString(), '2030-01-03T00:00:00.000Z');
  });

  test('a certificate that would outlive its CA is refused', async () => {
    await assert.rejects(issueClientCert({ ca, tenant: 'acme', validityDays: 31 }), rejects('FAILED_PRECONDITION', /CA expires at/));
  });

  test('tenant names are validated', async () => {
    for (const bad of ['Acme', 'a', '-acme', 'acme_robotics', 'acme.com', 'x'.repeat(64), '']) {
      await assert.rejects(issueClientCert({ ca, tenant: bad }), rejects('INVALID_ARGUMENT', /tenant name .* is not valid/), bad);
    }
    await assert.doesNotReject(issueClientCert({ ca, tenant: '0a', validityDays: 1 }));
  });

  test('server names, validity and the CA itself are validated', async () => {
    await assert.rejects(issueServerCert({ ca, commonName: 'gw', dnsNames: ['bad name'] }), rejects('INVALID_ARGUMENT', /not a valid DNS name/));
    await assert.rejects(issueServerCert({ ca, commonName: 'gw', ipAddresses: ['300.1.1.1'] }), rejects('INVALID_ARGUMENT', /not an IPv4 or IPv6 address/));
    await assert.rejects(issueServerCert({ ca, commonName: 'gw' }), rejects('INVALID_ARGUMENT', /at least one DNS name or IP address/));
    await assert.rejects(issueClientCert({ ca, tenant: 'acme', validityDays: 0 }), rejects('INVALID_ARGUMENT', /validity of 0 days/));
    await assert.rejects(issueClientCert({ ca: client, tenant: 'acme' }), rejects('INVALID_ARGUMENT', /is not a CA/));
    await assert.rejects(issueClientCert({ ca: { certPem: ca.certPem, keyPem: server.keyPem }, tenant: 'acme' }), rejects('INVALID_ARGUMENT', /does not belong to the CA certificate/));
    await assert.rejects(issueClientCert({ ca: { certPem: 'junk', keyPem: ca.keyPem }, tenant: 'acme' }), rejects('INVALID_ARGUMENT', /not a PEM X.509 certificate/));
  });
});

for (const [label, genAlg, signAlg, pkcs8Alg] of [
  ['RSA', { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, 'rsa'],
  ['EC P-384', { name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' }, 'ec'],
] as const) {
  test(`an existing ${label} CA can sign tenant certificates`, async () => {
    const keys = await webcrypto.subtle.generateKey(genAlg, true, ['sign', 'verify']);
    const caCert = await x509.X509CertificateGenerator.createSelfSigned({
      name: `CN=corporate ${label} CA`,
      keys: keys as never,
      signingAlgorithm: signAlg,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
      notAfter: new Date(Date.now() + 90 * 86_400_000),
    });
    const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const ca = { certPem: caCert.toString('pem'), keyPem: createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string };
    assert.equal(createPrivateKey(ca.keyPem).asymmetricKeyType, pkcs8Alg);
    const leaf = await issueClientCert({ ca, tenant: 'acme', validityDays: 30 });
    const cert = new X509Certificate(leaf.certPem);
    assert.ok(cert.verify(new X509Certificate(ca.certPem).publicKey));
    assert.equal(cert.subjectAltName, 'URI:spiffe://fedmm/tenant/acme');
  });
}
