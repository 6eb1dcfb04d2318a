import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from '@fedmm/audit';
import { FedmmError } from '@fedmm/core';

/** What a tenant signs to accept a task's terms. */
export interface TermsAcceptanceClaim {
  readonly taskId: string;
  readonly tenant: string;
  /** The task's terms_digest (sha256 hex of its terms JSON). */
  readonly termsDigest: string;
}

/** Domain-separation tag of the signed message, so the signature cannot be replayed as anything else. */
export const TERMS_SIGNATURE_PURPOSE = 'fedmm.terms.acceptance.digest/v1';

/** The exact bytes signed: canonical JSON of purpose, task, tenant and digest. */
export function termsSignedBytes(claim: TermsAcceptanceClaim): Buffer {
  return Buffer.from(canonicalJson({ purpose: TERMS_SIGNATURE_PURPOSE, task: claim.taskId, member: claim.tenant, termsDigest: claim.termsDigest }), 'utf8');
}

function digestFor(key: KeyObject): string | null {
  switch (key.asymmetricKeyType) {
    case 'ec':
    case 'rsa':
      return 'sha256';
    case 'ed25519':
      return null;
    default:
      throw new FedmmError('INVALID_ARGUMENT', `keys of type ${String(key.asymmetricKeyType)} cannot sign terms; use the EC P-256 key of the client certificate`);
  }
}

/** Signs a terms acceptance with the client certificate's private key (ECDSA-SHA256 for the PKI's P-256 keys). */
export function signTermsDigest(claim: TermsAcceptanceClaim, privateKeyPem: string | KeyObject): Buffer {
  if (!/^[0-9a-f]{64}$/.test(claim.termsDigest)) throw new FedmmError('INVALID_ARGUMENT', `terms digest ${JSON.stringify(claim.termsDigest)} is not a sha256 hex digest`);
  const key = typeof privateKeyPem === 'string' ? createPrivateKey(privateKeyPem) : privateKeyPem;
  return sign(digestFor(key), termsSignedBytes(claim), key);
}

/** Checks a signature made by {@link signTermsDigest} against the certificate (or public key) of the tenant. */
export function verifyTermsDigest(claim: TermsAcceptanceClaim, signature: Uint8Array, certificateOrPublicKeyPem: string | KeyObject): boolean {
  const key = typeof certificateOrPublicKeyPem === 'string' ? createPublicKey(certificateOrPublicKeyPem) : certificateOrPublicKeyPem;
  try {
    return verify(digestFor(key), termsSignedBytes(claim), key, signature);
  } catch {
    return false;
  }
}
