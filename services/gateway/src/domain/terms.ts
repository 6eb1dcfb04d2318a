import { constants, verify, X509Certificate } from 'node:crypto';
import { FedmmError } from '@fedmm/core';

/**
 * Checks a member's signature over a task's terms digest (the digest's UTF-8 hex text) with the
 * public key of its client certificate: ECDSA or RSA-PSS with SHA-256, or Ed25519, as the
 * audit library signs acceptances.
 */
export function verifyTermsSignature(certificatePem: string, termsDigest: string, signature: Uint8Array): void {
  let key;
  try {
    key = new X509Certificate(certificatePem).publicKey;
  } catch {
    throw new FedmmError('UNAUTHENTICATED', 'the client certificate cannot be read; connect with the certificate issued for your tenant');
  }
  const data = Buffer.from(termsDigest, 'utf8');
  let ok: boolean;
  switch (key.asymmetricKeyType) {
    case 'ec':
      ok = verify('sha256', data, key, signature);
      break;
    case 'ed25519':
      ok = verify(null, data, key, signature);
      break;
    case 'rsa':
    case 'rsa-pss':
      ok = verify('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature);
      break;
    default:
      throw new FedmmError('FAILED_PRECONDITION', `client certificates with ${String(key.asymmetricKeyType)} keys cannot sign terms; use an EC P-256, Ed25519 or RSA key`);
  }
  if (!ok) throw new FedmmError('PERMISSION_DENIED', `the signature does not verify over terms digest ${termsDigest} with the key of your client certificate; sign the digest with that certificate's key`);
}
