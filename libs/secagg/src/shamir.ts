import { combine, split } from 'shamir-secret-sharing';
import { invalidArgument } from '@fedmm/core';

// Thin wrapper over the audited shamir-secret-sharing package (GF(256), byte-wise): a share is
// the secret's length plus one byte, its last byte being the share's x-coordinate.

/** Bytes of one share of a 32-byte secret (a mask seed or an X25519 private key). */
export const SHARE_BYTES = 33;

/** Splits `secret` into `count` shares of which any `threshold` reconstruct it. */
export async function splitSecret(secret: Uint8Array, count: number, threshold: number): Promise<Uint8Array[]> {
  if (count < 2 || count > 255 || threshold < 2 || threshold > count) {
    throw invalidArgument(`cannot split a secret into ${count} shares with threshold ${threshold}`);
  }
  return split(secret, count, threshold);
}

/** Reconstructs a secret from at least its threshold of shares (fewer give a wrong value). */
export async function combineShares(shares: readonly Uint8Array[], secretBytes: number): Promise<Uint8Array> {
  if (shares.length < 2 || shares.length > 255) {
    throw invalidArgument(`cannot combine ${shares.length} shares; 2 to 255 are needed`);
  }
  const xs = new Set<number>();
  for (const s of shares) {
    if (s.length !== secretBytes + 1) {
      throw invalidArgument(`a share of a ${secretBytes}-byte secret has ${secretBytes + 1} bytes, got ${s.length}`);
    }
    xs.add(s[secretBytes]!);
  }
  if (xs.size !== shares.length) {
    throw invalidArgument('two shares carry the same x-coordinate; a share was duplicated or forged');
  }
  // The package checks `constructor === Uint8Array`; Buffers from a transport are copied.
  return combine(shares.map((s) => (s.constructor === Uint8Array ? s : new Uint8Array(s))));
}
