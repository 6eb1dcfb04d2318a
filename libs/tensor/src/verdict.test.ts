import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeVerdict, encodeVerdict, recordKind } from './verdict.js';
import { sha256Hex } from './sha256.js';

test('a verdict round-trips and is told apart from chunks', () => {
  const v = { task: 't1', round: 3, attempt: 1, client: 'acme', shard: 7, updateSha256: sha256Hex('x'), accept: true, numExamples: 120, norm: 1.25, seqCount: 2 };
  const rec = encodeVerdict(v);
  assert.equal(recordKind(rec.headers), 'verdict');
  assert.equal(recordKind({}), 'chunk');
  assert.deepEqual(decodeVerdict(rec.headers), v);
  assert.throws(() => decodeVerdict({ ...rec.headers, 'fedmm-verdict': 'maybe' }), /accept or reject/);
  assert.throws(() => decodeVerdict({ ...rec.headers, 'fedmm-norm': 'NaN' }), /finite/);
});
