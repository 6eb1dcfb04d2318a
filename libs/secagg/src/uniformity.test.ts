import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encode } from './fixed-point.js';
import { seededRandom } from './random.js';
import { clientIds, runRound, seedOf, syntheticUpdate } from './test-support.js';

// What the server sees of one client is its masked vector. These tests check that it looks like
// uniform words whatever the input, with fixed seeds so the outcome is reproducible, and that
// the same checks do reject the unmasked encoding (they have power).

const LENGTH = 1 << 16;

/** Wilson-Hilferty z-score of a chi-square statistic with `df` degrees of freedom. */
function chiSquareZ(stat: number, df: number): number {
  const a = 2 / (9 * df);
  return (Math.cbrt(stat / df) - (1 - a)) / Math.sqrt(a);
}

/** Chi-square statistic of the byte histogram of the vector against uniform bytes. */
function byteChiSquare(words: Uint32Array): number {
  const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  const counts = new Float64Array(256);
  for (const b of bytes) counts[b]!++;
  const expected = bytes.length / 256;
  return counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
}

/** Kolmogorov-Smirnov distance of the words, scaled to [0, 1), from the uniform distribution. */
function ksUniform(words: Uint32Array): number {
  const xs = Float64Array.from(words, (w) => w / 2 ** 32).sort();
  let d = 0;
  xs.forEach((x, i) => (d = Math.max(d, (i + 1) / xs.length - x, x - i / xs.length)));
  return d;
}

/** Two-sample Kolmogorov-Smirnov distance. */
function ksTwoSample(a: Uint32Array, b: Uint32Array): number {
  const x = Float64Array.from(a).sort();
  const y = Float64Array.from(b).sort();
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i]!, y[j]!);
    while (i < x.length && x[i] === v) i++;
    while (j < y.length && y[j] === v) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  return d;
}

// Critical values at significance 0.001.
const Z_CRIT = 3.09;
const KS_CRIT = 1.95;

function looksUniform(words: Uint32Array): { chiZ: number; ks: number; uniform: boolean } {
  const chiZ = chiSquareZ(byteChiSquare(words), 255);
  const ks = ksUniform(words) * Math.sqrt(words.length);
  return { chiZ, ks, uniform: chiZ < Z_CRIT && ks < KS_CRIT };
}

async function maskedVectorOf(input: (id: string, n: number) => Float32Array, label: string): Promise<Uint32Array> {
  const run = await runRound({ n: 3, numShares: 3, threshold: 2, vectorLength: LENGTH, updateOf: input, label });
  return run.maskedVectors.get(clientIds(3)[0]!)!;
}

test('a single masked upload is indistinguishable from uniform words, for constant and varied inputs', async () => {
  const zero = await maskedVectorOf((_, n) => new Float32Array(n), 'uniform/zero');
  const varied = await maskedVectorOf((id, n) => syntheticUpdate(`uniform/${id}`, n, 1), 'uniform/varied');
  for (const [name, v] of [['constant input', zero], ['varied input', varied]] as const) {
    const r = looksUniform(v);
    assert.ok(r.uniform, `${name}: chi-square z ${r.chiZ.toFixed(2)}, KS ${r.ks.toFixed(3)}`);
  }
  const two = ksTwoSample(zero, varied) * Math.sqrt(LENGTH / 2);
  assert.ok(two < KS_CRIT, `masked vectors of different inputs are distinguishable: KS ${two.toFixed(3)}`);
});

test('the same checks reject the unmasked encoding', () => {
  const encoded = encode(syntheticUpdate('uniform/plain', LENGTH, 1), { clipRange: 1, maxSummands: 3 }, seededRandom(seedOf('uniform/plain')));
  assert.equal(looksUniform(encoded).uniform, false);
  const shifted = encode(syntheticUpdate('uniform/plain2', LENGTH, 0.2), { clipRange: 1, maxSummands: 3 }, seededRandom(seedOf('uniform/plain2')));
  assert.ok(ksTwoSample(encoded, shifted) * Math.sqrt(LENGTH / 2) > KS_CRIT);
});
