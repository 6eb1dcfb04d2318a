import { createHash, createPrivateKey, createPublicKey, diffieHellman, hkdfSync, type KeyObject } from 'node:crypto';
import { invalidArgument } from '@fedmm/core';
import { randomBytesFrom, type RandomSource } from './random.js';

/** Bytes of a raw X25519 key, public or private. */
export const X25519_KEY_BYTES = 32;

/** An X25519 key pair in raw 32-byte form, as it travels in messages and Shamir shares. */
export interface RawKeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
  /** The private key imported once; importing costs far more than an agreement. */
  readonly privateKeyObject: KeyObject;
}

// PKCS#8 wrapper around a raw X25519 private key (RFC 8410), so node:crypto can import raw bytes.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** Imports a raw X25519 private key. */
export function importPrivateKey(raw: Uint8Array): KeyObject {
  if (raw.length !== X25519_KEY_BYTES) {
    throw invalidArgument(`an X25519 private key has ${X25519_KEY_BYTES} bytes, got ${raw.length}`);
  }
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
}

function importPublicKey(raw: Uint8Array): KeyObject {
  if (raw.length !== X25519_KEY_BYTES) {
    throw invalidArgument(`an X25519 public key has ${X25519_KEY_BYTES} bytes, got ${raw.length}`);
  }
  // JWK import is an order of magnitude faster than DER in node 20.
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

/** The raw public key of a raw X25519 private key. */
export function publicKeyOf(privateKey: Uint8Array | KeyObject): Uint8Array {
  const key = privateKey instanceof Uint8Array ? importPrivateKey(privateKey) : privateKey;
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  return new Uint8Array(Buffer.from(jwk.x ?? '', 'base64url'));
}

/** A fresh X25519 key pair; any 32 random bytes are a valid private key (X25519 clamps them). */
export function generateKeyPair(random: RandomSource): RawKeyPair {
  const privateKey = randomBytesFrom(random, X25519_KEY_BYTES);
  const privateKeyObject = importPrivateKey(privateKey);
  return { privateKey, privateKeyObject, publicKey: publicKeyOf(privateKeyObject) };
}

/** The X25519 shared secret of a private and a peer's public key. */
export function x25519(privateKey: KeyObject, publicKey: Uint8Array): Uint8Array {
  const peer = importPublicKey(publicKey);
  try {
    return new Uint8Array(diffieHellman({ privateKey, publicKey: peer }));
  } catch (e) {
    // OpenSSL rejects low-order points, whose shared secret would be all zeros.
    throw invalidArgument('X25519 key agreement failed: the peer public key is not a usable curve point', {
      cause: e instanceof Error ? e.message : String(e),
    });
  }
}

/** Length-prefixed UTF-8, so that concatenated identifiers cannot be confused. */
export function lengthPrefixed(...parts: (string | Uint8Array)[]): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const bytes = typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length);
    chunks.push(len, bytes);
  }
  return Buffer.concat(chunks);
}

/** SHA-256 of the given parts, length-prefixed. */
export function digest(...parts: (string | Uint8Array)[]): Uint8Array {
  return new Uint8Array(createHash('sha256').update(lengthPrefixed(...parts)).digest());
}

/** Key-derivation labels; each derived key has exactly one purpose. */
export const KeyPurpose = Object.freeze({
  shareEncryption: 'fedmm/secagg/v1/share-encryption',
  pairwiseMask: 'fedmm/secagg/v1/pairwise-mask',
} as const);
export type KeyPurpose = (typeof KeyPurpose)[keyof typeof KeyPurpose];

/**
 * HKDF-SHA256 of an X25519 shared secret into a 32-byte key for one purpose, salted with the
 * round context and bound to the unordered pair of clients (both ends derive the same key).
 */
export function derivePairKey(
  sharedSecret: Uint8Array,
  roundContext: Uint8Array,
  purpose: KeyPurpose,
  a: string,
  b: string,
): Uint8Array {
  const [lo, hi] = a < b ? [a, b] : [b, a];
  return new Uint8Array(hkdfSync('sha256', sharedSecret, roundContext, lengthPrefixed(purpose, lo, hi), 32));
}
