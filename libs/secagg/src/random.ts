import { createCipheriv, randomFillSync } from 'node:crypto';
import { invalidArgument } from '@fedmm/core';

/** Where a client draws its secret randomness (keys, self-mask seed, rounding, nonces). */
export interface RandomSource {
  fill(target: Uint8Array): void;
}

/** The operating system CSPRNG; the only source a real round may use. */
export const systemRandom: RandomSource = Object.freeze({
  fill(target: Uint8Array): void {
    // randomFillSync refuses more than 2^31-1 bytes per call.
    const max = 1 << 30;
    for (let at = 0; at < target.length; at += max) {
      randomFillSync(target.subarray(at, Math.min(target.length, at + max)));
    }
  },
});

/**
 * A deterministic AES-256-CTR generator, for reproducible tests and benchmarks only:
 * whoever knows the seed knows every key and mask drawn from it.
 */
export function seededRandom(seed: Uint8Array): RandomSource {
  if (seed.length !== 32) {
    throw invalidArgument(`seededRandom needs a 32-byte seed, got ${seed.length} bytes`);
  }
  const cipher = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16));
  return {
    fill(target: Uint8Array): void {
      target.fill(0);
      const out = cipher.update(target);
      target.set(out);
    },
  };
}

/** Draws n random bytes from the source. */
export function randomBytesFrom(source: RandomSource, n: number): Uint8Array {
  const out = new Uint8Array(n);
  source.fill(out);
  return out;
}
