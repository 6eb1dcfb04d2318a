import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeUpdateChunk } from './chunk.js';
import { decodeMaskedChunk, encodeMaskedChunk, isMaskedChunk } from './masked-chunk.js';

const FP = 'a'.repeat(64);

test('masked words round-trip bit for bit, NaN patterns included, and a float reader refuses them', () => {
  const words = Uint32Array.from([0, 1, 0x7fc00001, 0xffffffff, 0x7f800000, 123456789]);
  const e = encodeMaskedChunk({ task: 't', round: 2, client: 'acme', shard: 1, seq: 0, seqCount: 1, layoutFingerprint: FP, elementOffset: 40, words, numExamples: 0 });
  assert.ok(isMaskedChunk(e.headers));
  assert.equal(e.headers['fedmm-dtype'], 'U32');
  // A Kafka consumer hands headers over as Buffers and values at any offset.
  const headers = Object.fromEntries(Object.entries(e.headers).map(([k, v]) => [k, Buffer.from(v)]));
  const shifted = new Uint8Array(e.value.length + 1).subarray(1);
  shifted.set(e.value);
  const d = decodeMaskedChunk(headers, shifted);
  assert.deepEqual([...d.words], [...words]);
  assert.equal(d.elementOffset, 40);
  assert.throws(() => decodeUpdateChunk(e.headers, e.value), /dtype "U32" is not one of/);
  assert.throws(() => decodeMaskedChunk({ ...e.headers, 'fedmm-masked': '0' }, e.value), /fedmm-masked/);
  const corrupt = new Uint8Array(e.value);
  corrupt[3] = corrupt[3]! ^ 1;
  assert.throws(() => decodeMaskedChunk(e.headers, corrupt), /CRC-32C/);
});
