import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { AuditLog } from './audit-log.js';
import { MemoryAuditSink } from './sink.js';
import {
  type ConsortiumTerms,
  membersMissingAcceptance,
  signAcceptance,
  termsAcceptedInput,
  termsDigest,
  termsRecordedInput,
  termsStateFromChain,
  verifyAcceptance,
} from './terms.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const terms: ConsortiumTerms = {
  task: 'task-7',
  version: 1,
  rewardRule: { kind: 'proportional-positive', floor: 0 },
  accessTiers: { tiers: [{ name: 'full', minShare: 0.05, versionDelay: 0 }, { name: 'free-rider', minShare: 0, versionDelay: 3 }] },
  privacyBudgets: { task: { epsilon: 8, delta: 1e-6 } },
  dataUse: 'The shared model may be used by members for defect detection only; updates are used only to build it.',
};

const ALGORITHMS = {
  'EC P-256': { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
  Ed25519: { name: 'Ed25519' },
  RSA: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 },
} as const;

async function identity(member: string, algorithm: (typeof ALGORITHMS)[keyof typeof ALGORITHMS]) {
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${member}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: algorithm,
    keys,
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { cert: cert.toString('pem'), key: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }) };
}

const commonName = (c: import('node:crypto').X509Certificate) => /CN=([^\n,]+)/.exec(c.subject)?.[1];

for (const [name, algorithm] of Object.entries(ALGORITHMS)) {
  test(`acceptance signed with a ${name} client key verifies against its certificate`, async () => {
    const acme = await identity('acme', algorithm);
    const other = await identity('globex', algorithm);
    const acceptance = signAcceptance(terms, acme.key, { member: 'acme' });
    assert.deepEqual(verifyAcceptance(terms, acceptance, acme.cert, { identity: commonName }), { ok: true });
    const wrongKey = verifyAcceptance(terms, acceptance, other.cert);
    assert.equal(wrongKey.ok, false);
    const wrongMember = verifyAcceptance(terms, { ...acceptance, member: 'globex' }, acme.cert, { identity: commonName });
    assert.equal(wrongMember.ok, false);
    const forged = verifyAcceptance(terms, { ...acceptance, acceptedAt: new Date(Date.now() + 1000).toISOString() }, acme.cert);
    assert.deepEqual(forged, { ok: false, reason: 'the signature does not verify with the certificate key' });
  });
}

test('an acceptance of other terms or an older version does not count', async () => {
  const acme = await identity('acme', ALGORITHMS['EC P-256']);
  const acceptance = signAcceptance(terms, acme.key, { member: 'acme' });
  const changed: ConsortiumTerms = { ...terms, version: 2, accessTiers: { tiers: [{ name: 'all', minShare: 0, versionDelay: 0 }] } };
  assert.notEqual(termsDigest(changed), termsDigest(terms));
  assert.match((verifyAcceptance(changed, acceptance, acme.cert) as { reason: string }).reason, /version 1/);
  assert.match((verifyAcceptance({ ...terms, dataUse: 'anything' }, acceptance, acme.cert) as { reason: string }).reason, /digest/);
  assert.deepEqual(membersMissingAcceptance(terms, ['acme', 'globex'], [acceptance]), ['globex']);
  assert.deepEqual(membersMissingAcceptance(changed, ['acme', 'globex'], [acceptance]), ['acme', 'globex']);
});

test('terms and acceptances on the chain decide who may join, and a change needs everyone again', async () => {
  const [acme, globex] = await Promise.all([identity('acme', ALGORITHMS['EC P-256']), identity('globex', ALGORITHMS.Ed25519)]);
  const log = new AuditLog(new MemoryAuditSink());
  await log.append({ task: terms.task, kind: 'task.created', actor: 'operator', payload: { rounds: 10 } });
  await log.append(termsRecordedInput(terms, 'operator'));
  await log.append(termsAcceptedInput(signAcceptance(terms, acme.key, { member: 'acme' })));
  assert.deepEqual(termsStateFromChain(await log.list(terms.task)).accepted, ['acme']);
  await log.append(termsAcceptedInput(signAcceptance(terms, globex.key, { member: 'globex' })));
  assert.deepEqual(termsStateFromChain(await log.list(terms.task)).accepted, ['acme', 'globex']);
  const v2: ConsortiumTerms = { ...terms, version: 2, privacyBudgets: { task: { epsilon: 4, delta: 1e-6 } } };
  await log.append(termsRecordedInput(v2, 'operator'));
  const state = termsStateFromChain(await log.list(terms.task));
  assert.equal(state.terms?.version, 2);
  assert.deepEqual(state.accepted, []);
  assert.equal((await log.verify(terms.task)).ok, true);
});

test('terms without a data-use statement are refused', () => {
  assert.throws(() => termsDigest({ ...terms, dataUse: ' ' }), /data-use statement/);
});
