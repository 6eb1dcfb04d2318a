import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyMask, maskRange } from './prg.js';
import { seedOf } from './test-support.js';

test('the mask stream is the AES-256-CTR keystream read as little-endian words', () => {
  // FIPS-197 style known answer: AES-256 under the all-zero key encrypts the zero block to dc95c078 a2408989 ad48a214 92842087.
  const words = maskRange(new Uint8Array(32), 0, 4);
  assert.deepEqual([...words], [0x78c095dc, 0x898940a2, 0x14a248ad, 0x87208492]);
});

test('any range of the stream equals the same slice of the whole stream', () => {
  const seed = seedOf('prg/range');
  const total = 200_000; // crosses the internal 16Ki-word slices
  const whole = maskRange(seed, 0, total);
  for (const [offset, length] of [[0, 1], [1, 3], [3, 5], [4, 4], [5, 70_000], [65_535, 2], [65_537, 100_000], [total - 1, 1], [17, 0]] as const) {
    assert.deepEqual(maskRange(seed, offset, length), whole.subarray(offset, offset + length), `offset ${offset} length ${length}`);
  }
});

test('different seeds give unrelated streams', () => {
  const a = maskRange(seedOf('prg/a'), 0, 1024);
  const b = maskRange(seedOf('prg/b'), 0, 1024);
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  assert.ok(same <= 1);
});

test('adding then subtracting a mask at an offset restores the vector, wrapping mod 2^32', () => {
  const seed = seedOf('prg/apply');
  const v = new Uint32Array([0, 1, 0xffffffff, 12345, 0x80000000, 7, 9]);
  const copy = v.slice();
  applyMask(v, seed, 1, 1_000_003);
  assert.notDeepEqual(v, copy);
  const expected = maskRange(seed, 1_000_003, v.length);
  for (let i = 0; i < v.length; i++) assert.equal(v[i], (copy[i]! + expected[i]!) % 2 ** 32);
  applyMask(v, seed, -1, 1_000_003);
  assert.deepEqual(v, copy);
});

test('a malformed seed or range is refused', () => {
  assert.throws(() => maskRange(new Uint8Array(16), 0, 4), /32 bytes/);
  assert.throws(() => maskRange(new Uint8Array(32), -1, 4), /non-negative integer/);
  assert.throws(() => maskRange(new Uint8Array(32), 0.5, 4), /non-negative integer/);
});
