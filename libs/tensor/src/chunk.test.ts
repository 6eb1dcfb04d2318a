import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedmmError } from '@fedmm/core';
import { encodeF16, quantizeInt8 } from './dtype.js';
import { CHUNK_HEADERS, decodeUpdateChunk, encodeUpdateChunk, type UpdateChunk } from './chunk.js';
import { MAX_CHUNK_VALUE_BYTES, createLayout } from './flat.js';
import { crc32c } from './crc32c.js';

const layout = createLayout([{ name: 'a', dtype: 'F32', shape: [10] }]);
const base: UpdateChunk = {
  task: 'task-1', round: 3, client: 'acme', shard: 1, seq: 0, seqCount: 1, layoutFingerprint: layout.fingerprint,
  dtype: 'F32', elementOffset: 4, values: new Float32Array([1, -2, 3.5, 0]), numExamples: 120,
};

function asKafka(headers: Readonly<Record<string, string>>): Record<string, Buffer> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Buffer.from(v)]));
}

test('encode produces key round/shard, string headers with the CRC-32C, and raw little-endian values', () => {
  const e = encodeUpdateChunk(base);
  assert.equal(e.key, '3/1');
  assert.equal(e.headers[CHUNK_HEADERS.crc32c], crc32c(e.value).toString(16).padStart(8, '0'));
  assert.equal(e.headers[CHUNK_HEADERS.count], '4');
  assert.equal(e.value.length, 16);
  assert.equal(new DataView(e.value.buffer, e.value.byteOffset).getFloat32(4, true), -2);
  const d = decodeUpdateChunk(asKafka(e.headers), e.value, { layout, shardElements: 4, requireFinite: true });
  assert.deepEqual({ ...d, values: [...d.values] }, { ...base, values: [1, -2, 3.5, 0], count: 4, crc32c: crc32c(e.value), zeroCopy: true });
});

test('decode copies unaligned values and round-trips F16, BF16 and scaled I8', () => {
  const q = quantizeInt8(new Float32Array([0.5, -1]));
  for (const c of [
    { ...base, dtype: 'F16' as const, values: encodeF16(new Float32Array([1, 2, 3])) },
    { ...base, dtype: 'BF16' as const, values: new Uint16Array([0x3f80, 0x4000]) },
    { ...base, dtype: 'I8' as const, values: q.values, scale: q.scale, updateSha256: 'ab'.repeat(32) },
  ]) {
    const e = encodeUpdateChunk(c);
    const shifted = new Uint8Array(e.value.length + 1);
    shifted.set(e.value, 1);
    const d = decodeUpdateChunk(e.headers, shifted.subarray(1));
    assert.equal(d.zeroCopy, c.dtype === 'I8');
    assert.deepEqual([...d.values], [...c.values]);
    assert.equal(d.scale, c.scale);
    assert.equal(d.updateSha256, c.updateSha256);
  }
});

test('decode rejects corruption, bad headers and out-of-shard values with FedmmError', () => {
  const e = encodeUpdateChunk(base);
  const flipped = e.value.slice();
  flipped[3]! ^= 1;
  assert.throws(() => decodeUpdateChunk(e.headers, flipped), (err) => isFedmmError(err) && err.code === 'DATA_LOSS');
  const with_ = (k: string, v: string | undefined): Record<string, string> => {
    const h: Record<string, string> = { ...e.headers };
    if (v === undefined) delete h[k]; else h[k] = v;
    return h;
  };
  const cases: [Record<string, string>, RegExp][] = [
    [with_(CHUNK_HEADERS.version, '2'), /wire version/],
    [with_(CHUNK_HEADERS.round, undefined), /fedmm-round is missing/],
    [with_(CHUNK_HEADERS.round, '01'), /not a decimal integer/],
    [with_(CHUNK_HEADERS.round, '4294967296'), /out of range/],
    [with_(CHUNK_HEADERS.seq, '1'), /seq 1 is not below/],
    [with_(CHUNK_HEADERS.count, '5'), /value has 16 bytes but 5/],
    [with_(CHUNK_HEADERS.dtype, 'F64'), /dtype/],
    [with_(CHUNK_HEADERS.client, 'a b'), /client/],
    [with_(CHUNK_HEADERS.layout, 'xyz'), /fedmm-layout/],
    [with_(CHUNK_HEADERS.crc32c, 'E3069283'), /fedmm-crc32c/],
    [with_(CHUNK_HEADERS.scale, '0.5'), /must not carry/],
  ];
  for (const [h, re] of cases) {
    assert.throws(() => decodeUpdateChunk(h, e.value), (err) => isFedmmError(err) && err.code === 'INVALID_ARGUMENT' && re.test(err.message), String(re));
  }
  assert.throws(() => decodeUpdateChunk({ ...e.headers, [CHUNK_HEADERS.task]: ['a', 'b'] }, e.value), /repeated/);
  assert.throws(() => decodeUpdateChunk(e.headers, e.value, { layout, shardElements: 5 }), /outside shard 1/);
  const other = createLayout([{ name: 'b', dtype: 'F32', shape: [10] }]);
  assert.throws(() => decodeUpdateChunk(e.headers, e.value, { layout: other }), (err) => isFedmmError(err) && err.code === 'FAILED_PRECONDITION');
  const nan = encodeUpdateChunk({ ...base, values: new Float32Array([1, NaN]) });
  assert.doesNotThrow(() => decodeUpdateChunk(nan.headers, nan.value));
  assert.throws(() => decodeUpdateChunk(nan.headers, nan.value, { requireFinite: true }), /value 1 \(element 5\) is not finite/);
  const inf16 = encodeUpdateChunk({ ...base, dtype: 'F16', values: new Uint16Array([0x3c00, 0xfc00]) });
  assert.throws(() => decodeUpdateChunk(inf16.headers, inf16.value, { requireFinite: true }), /not finite/);
});

test('encode refuses chunks that would not fit a Kafka message, and inconsistent fields', () => {
  assert.throws(() => encodeUpdateChunk({ ...base, values: new Float32Array(MAX_CHUNK_VALUE_BYTES / 4 + 1) }), (e) => isFedmmError(e) && e.code === 'RESOURCE_EXHAUSTED');
  assert.doesNotThrow(() => encodeUpdateChunk({ ...base, values: new Float32Array(MAX_CHUNK_VALUE_BYTES / 4) }));
  assert.throws(() => encodeUpdateChunk({ ...base, dtype: 'I8', values: new Int8Array(2) }), /scale/);
  assert.throws(() => encodeUpdateChunk({ ...base, dtype: 'F16' }), /Uint16Array/);
  assert.throws(() => encodeUpdateChunk({ ...base, seq: 1 }), /below seqCount/);
  assert.throws(() => encodeUpdateChunk({ ...base, layoutFingerprint: 'abc' }), /layoutFingerprint/);
  const e = encodeUpdateChunk({ ...base, values: new Float32Array(MAX_CHUNK_VALUE_BYTES / 4) });
  const headerBytes = Object.entries(e.headers).reduce((n, [k, v]) => n + k.length + v.length, 0) + e.key.length;
  assert.ok(headerBytes < 1024, `headers take ${headerBytes} bytes`);
});

test('a chunk whose bytes sit at an unaligned offset of a Node Buffer decodes into an aligned copy', async () => {
  const { encodeUpdateChunk: enc, decodeUpdateChunk: dec } = await import('./chunk.js');
  const rec = enc({ task: 't', round: 1, client: 'c', shard: 0, seq: 0, seqCount: 1, layoutFingerprint: 'a'.repeat(64), dtype: 'F32', elementOffset: 0, values: Float32Array.of(1, 2, 3), numExamples: 1 });
  const backing = Buffer.alloc(rec.value.byteLength + 1);
  backing.set(rec.value, 1);
  const d = dec(rec.headers, backing.subarray(1));
  assert.equal(d.zeroCopy, false);
  assert.deepEqual([...d.values], [1, 2, 3]);
});
