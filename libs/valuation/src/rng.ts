import { createHash, randomBytes } from 'node:crypto';

/** A seeded pseudo-random generator (xoshiro128**): reproducible sampling, never for secrets. */
export interface Rng {
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [0, bound). */
  int(bound: number): number;
}

/** Creates a reproducible generator from any seed; the same seed always yields the same stream. */
export function seededRng(seed: number | string): Rng {
  // sha256 spreads any seed (small integers included) over the whole 128-bit state.
  const digest = createHash('sha256').update(`fedmm.valuation.rng:${String(seed)}`).digest();
  let a = digest.readUInt32LE(0);
  let b = digest.readUInt32LE(4);
  let c = digest.readUInt32LE(8);
  let d = digest.readUInt32LE(12);
  if ((a | b | c | d) === 0) a = 1;
  const nextU32 = (): number => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result;
  };
  return {
    next: () => nextU32() / 4294967296,
    int: (bound: number) => {
      if (!Number.isInteger(bound) || bound <= 0) throw new RangeError(`bound must be a positive integer, got ${bound}`);
      // Rejection sampling keeps the draw unbiased for bounds that do not divide 2^32.
      const limit = 4294967296 - (4294967296 % bound);
      for (;;) {
        const x = nextU32();
        if (x < limit) return x % bound;
      }
    },
  };
}

/** A fresh unpredictable seed, for callers that want sampling nobody can steer. */
export function randomSeed(): string {
  return randomBytes(16).toString('hex');
}

/** Fisher-Yates shuffle into a new array. */
export function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = out[i] as T;
    out[i] = out[j] as T;
    out[j] = tmp;
  }
  return out;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
