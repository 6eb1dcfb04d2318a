import { constants, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { FedmmError } from '@fedmm/core';

/**
 * The bytes a member signs to accept a task's terms: the UTF-8 text of the task's terms_digest
 * (sha256 hex of its terms JSON). This is what the gateway verifies against the key of the client
 * certificate the call came with, so the certificate binds tenant and task, and the digest the terms.
 */
export function termsSignedBytes(termsDigest: string): Buffer {
  if (!/^[0-9a-f]{64}$/.test(termsDigest)) throw new FedmmError('INVALID_ARGUMENT', `terms digest ${JSON.stringify(termsDigest)} is not a lower-case sha256 hex digest`);
  return Buffer.from(termsDigest, 'utf8');
}

function schemeOf(key: KeyObject): { digest: string | null; options: Record<string, unknown> } {
  switch (key.asymmetricKeyType) {
    case 'ec':
      return { digest: 'sha256', options: {} };
    case 'ed25519':
      return { digest: null, options: {} };
    case 'rsa':
    case 'rsa-pss':
      return { digest: 'sha256', options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } };
    default:
      throw new FedmmError('INVALID_ARGUMENT', `keys of type ${String(key.asymmetricKeyType)} cannot sign terms; use the EC P-256, Ed25519 or RSA key of the client certificate`);
  }
}

/** Signs a task's terms digest with the client certificate's private key (ECDSA-SHA256 for the PKI's P-256 keys). */
export function signTermsDigest(termsDigest: string, privateKeyPem: string | KeyObject): Buffer {
  const key = typeof privateKeyPem === 'string' ? createPrivateKey(privateKeyPem) : privateKeyPem;
  const s = schemeOf(key);
  return sign(s.digest, termsSignedBytes(termsDigest), { key, ...s.options });
}

/** Checks a signature made by {@link signTermsDigest} with a certificate or public key. */
export function verifyTermsDigest(termsDigest: string, signature: Uint8Array, certificateOrPublicKeyPem: string | KeyObject): boolean {
  const key = typeof certificateOrPublicKeyPem === 'string' ? createPublicKey(certificateOrPublicKeyPem) : certificateOrPublicKeyPem;
  const s = schemeOf(key);
  try {
    return verify(s.digest, termsSignedBytes(termsDigest), { key, ...s.options }, signature);
  } catch {
    return false;
  }
}
