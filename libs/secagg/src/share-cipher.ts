import { createCipheriv, createDecipheriv } from 'node:crypto';
import { invalidArgument } from '@fedmm/core';
import { lengthPrefixed } from './keys.js';
import { randomBytesFrom, type RandomSource } from './random.js';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** Associated data of a sealed share: round context, sender, receiver; a share moved to another pair or round fails to open. */
export function shareAssociatedData(roundContext: Uint8Array, sender: string, receiver: string): Uint8Array {
  return lengthPrefixed('fedmm/secagg/v1/share', roundContext, sender, receiver);
}

/** Seals `plaintext` with AES-256-GCM under `key` and a random 96-bit nonce. */
export function sealShare(
  key: Uint8Array,
  associatedData: Uint8Array,
  plaintext: Uint8Array,
  random: RandomSource,
): { nonce: Uint8Array; ciphertext: Uint8Array } {
  const nonce = randomBytesFrom(random, NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(associatedData);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { nonce, ciphertext: new Uint8Array(body) };
}

/** Opens a sealed share; throws INVALID_ARGUMENT when it was altered, misaddressed or sealed under another key. */
export function openShare(
  key: Uint8Array,
  associatedData: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  what: string,
): Uint8Array {
  if (nonce.length !== NONCE_BYTES || ciphertext.length < TAG_BYTES) {
    throw invalidArgument(`${what}: malformed sealed share (nonce ${nonce.length} bytes, ciphertext ${ciphertext.length} bytes)`);
  }
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(associatedData);
  decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES));
  try {
    return new Uint8Array(
      Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - TAG_BYTES)), decipher.final()]),
    );
  } catch {
    throw invalidArgument(`${what}: the sealed share failed authentication; it was altered or is not addressed to this client in this round`);
  }
}
