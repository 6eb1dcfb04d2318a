import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedmmError } from '@fedmm/core';
import { MAX_STREAM_CHUNK_BYTES, StreamVerifier, streamChunks } from './upload.js';
import { sha256Hex } from './sha256.js';

const payload = new Uint8Array(2.5 * 1024 * 1024).map((_, i) => (i * 31) & 0xff);

test('a payload splits into chunks of at most 1 MiB that verify, and the whole matches its sha256', () => {
  const chunks = [...streamChunks(payload)];
  assert.equal(chunks.length, 3);
  assert.ok(chunks.every((c) => c.data.length <= MAX_STREAM_CHUNK_BYTES));
  const v = new StreamVerifier({ size: payload.length, sha256: sha256Hex(payload) });
  for (const c of chunks) assert.equal(v.accept(c), 'accepted');
  assert.equal(v.complete, true);
  assert.equal(v.finish(), sha256Hex(payload));
});

test('resending acknowledged chunks is a duplicate; a gap, an overrun or a bad CRC is refused with the resume offset', () => {
  const v = new StreamVerifier({ size: payload.length, sha256: sha256Hex(payload) });
  const chunks = [...streamChunks(payload, 0, 1000 * 1000)];
  v.accept(chunks[0]!);
  assert.equal(v.accept(chunks[0]!), 'duplicate');
  assert.throws(() => v.accept(chunks[2]!), (e) => isFedmmError(e) && e.code === 'OUT_OF_RANGE' && e.details['resumeFrom'] === 1000 * 1000);
  assert.throws(() => v.accept({ ...chunks[1]!, crc32c: (chunks[1]!.crc32c ^ 1) >>> 0 }), (e) => isFedmmError(e) && e.code === 'DATA_LOSS');
  assert.throws(() => v.finish(), /send the rest from offset 1000000/);
  // Resume: the sender restarts from bytesReceived.
  for (const c of streamChunks(payload, v.bytesReceived, 1000 * 1000)) v.accept(c);
  assert.equal(v.finish(), sha256Hex(payload));
  const small = new StreamVerifier({ size: 4, sha256: sha256Hex(new Uint8Array(4)) });
  assert.throws(() => small.accept([...streamChunks(new Uint8Array(5))][0]!), /runs past the declared size 4/);
});

test('a stream whose bytes do not hash to the declared sha256 fails at finish', () => {
  const v = new StreamVerifier({ size: payload.length, sha256: sha256Hex('something else') });
  for (const c of streamChunks(payload)) v.accept(c);
  assert.throws(() => v.finish(), (e) => isFedmmError(e) && e.code === 'DATA_LOSS');
});
