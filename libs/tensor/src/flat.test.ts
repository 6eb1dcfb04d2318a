import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedmmError } from '@fedmm/core';
import { encodeBf16, encodeF16, quantizeInt8 } from './dtype.js';
import {
  DEFAULT_SHARD_ELEMENTS, MAX_CHUNK_VALUE_BYTES, canonicalLayoutJson, checkLayoutFingerprint, createLayout, gatherShard,
  partitionFor, scatterShard, shardAt, shardByteRange, shardCount, shardKey, shardsOf,
} from './flat.js';
import { sha256Hex } from './sha256.js';

const tensors = [
  { name: 'text.q.lora_B', dtype: 'F32' as const, shape: [4, 2] },
  { name: 'image.k.lora_A', dtype: 'F16' as const, shape: [2, 3], modality: 'image' },
  { name: 'head.bias', dtype: 'BF16' as const, shape: [5] },
  { name: 'empty', dtype: 'F32' as const, shape: [0] },
  { name: 'fusion.w', dtype: 'I8' as const, shape: [3] },
];

test('the layout is sorted by name with element and byte offsets, and its fingerprint is sha256 of the canonical JSON', () => {
  const layout = createLayout(tensors);
  assert.deepEqual(layout.entries.map((e) => e.name), ['empty', 'fusion.w', 'head.bias', 'image.k.lora_A', 'text.q.lora_B']);
  assert.deepEqual(layout.entries.map((e) => [e.offset, e.length, e.byteOffset, e.byteLength]),
    [[0, 0, 0, 0], [0, 3, 0, 3], [3, 5, 3, 10], [8, 6, 13, 12], [14, 8, 25, 32]]);
  assert.equal(layout.totalElements, 22);
  assert.equal(layout.totalBytes, 57);
  const json = canonicalLayoutJson(tensors);
  assert.equal(json.slice(0, 82), '{"fedmm.layout":1,"tensors":[{"name":"empty","dtype":"F32","shape":[0]},{"name":"f');
  assert.ok(json.includes('"modality":"image"'));
  assert.equal(layout.fingerprint, sha256Hex(json));
  assert.equal(createLayout([...tensors].reverse()).fingerprint, layout.fingerprint, 'input order does not matter');
  assert.notEqual(createLayout(tensors.map((t) => (t.name === 'head.bias' ? { ...t, shape: [6] } : t))).fingerprint, layout.fingerprint);
  assert.notEqual(createLayout(tensors.map((t) => (t.name === 'head.bias' ? { ...t, dtype: 'F16' as const } : t))).fingerprint, layout.fingerprint);
  assert.doesNotThrow(() => checkLayoutFingerprint(layout, layout.fingerprint));
  assert.throws(() => checkLayoutFingerprint(layout, '0'.repeat(64)), (e) => isFedmmError(e) && e.code === 'FAILED_PRECONDITION');
  assert.throws(() => createLayout([...tensors, tensors[0]!]), /twice/);
  assert.throws(() => createLayout([{ name: 'x', dtype: 'F64' as never, shape: [1] }]), /dtype/);
});

test('shards tile the flattened space exactly, and pieces map back to tensor ranges', () => {
  const layout = createLayout(tensors);
  for (const size of [1, 3, 7, 22, 100]) {
    const shards = shardsOf(layout, size);
    assert.equal(shards.length, shardCount(layout, size));
    assert.equal(shards.length, Math.ceil(22 / size));
    let covered = 0;
    for (const s of shards) {
      assert.equal(s.start, covered);
      assert.ok(s.end - s.start <= size);
      let flat = s.start;
      for (const p of s.pieces) {
        const e = layout.entries[p.tensorIndex]!;
        assert.equal(p.flatStart, flat);
        assert.equal(p.flatStart, e.offset + p.start);
        assert.ok(p.end > p.start && p.end <= e.length);
        flat += p.end - p.start;
      }
      assert.equal(flat, s.end);
      covered = s.end;
      assert.deepEqual(shardAt(layout, s.index, size), s);
    }
    assert.equal(covered, 22);
  }
  const s = shardAt(layout, 1, 7); // elements [7, 14)
  assert.deepEqual(s.pieces.map((p) => [p.name, p.start, p.end]), [['head.bias', 4, 5], ['image.k.lora_A', 0, 6]]);
  assert.deepEqual(shardByteRange(layout, s), [3 + 8, 13 + 12]);
  assert.throws(() => shardAt(layout, 4, 7), (e) => isFedmmError(e) && e.code === 'OUT_OF_RANGE');
  assert.throws(() => shardsOf(layout, DEFAULT_SHARD_ELEMENTS + 1), /exceeds/);
  assert.equal(DEFAULT_SHARD_ELEMENTS * 4, MAX_CHUNK_VALUE_BYTES);
  assert.equal(shardCount(createLayout([])), 0);
});

test('gatherShard converts each dtype to float32 and scatterShard puts the values back', () => {
  const layout = createLayout(tensors);
  const values: Record<string, Float32Array> = {
    'empty': new Float32Array(0),
    'fusion.w': new Float32Array([0.5, -1, 0.25]),
    'head.bias': new Float32Array([1, 2, 3, 4, 5]),
    'image.k.lora_A': new Float32Array([0.5, 0.25, -0.125, 2, 4, 8]),
    'text.q.lora_B': new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]).map((x) => x / 3),
  };
  const q = quantizeInt8(values['fusion.w']!);
  const bytesOfTensor: Record<string, Uint8Array> = {
    'empty': new Uint8Array(0),
    'fusion.w': new Uint8Array(q.values.buffer),
    'head.bias': new Uint8Array(encodeBf16(values['head.bias']!).buffer),
    'image.k.lora_A': new Uint8Array(encodeF16(values['image.k.lora_A']!).buffer),
    'text.q.lora_B': new Uint8Array(values['text.q.lora_B']!.buffer),
  };
  const payload = new Uint8Array(layout.totalBytes);
  for (const e of layout.entries) payload.set(bytesOfTensor[e.name]!, e.byteOffset);
  const scales = new Map([['fusion.w', q.scale]]);
  const rebuilt = new Map<string, Float32Array>();
  for (const s of shardsOf(layout, 5)) {
    const [b, e] = shardByteRange(layout, s);
    const fromRange = gatherShard(layout, s, payload.slice(b, e), scales, b);
    assert.deepEqual(fromRange, gatherShard(layout, s, payload, scales));
    scatterShard(layout, s, fromRange, rebuilt);
  }
  for (const [name, v] of Object.entries(values)) {
    const got = rebuilt.get(name) ?? new Float32Array(0);
    for (let i = 0; i < v.length; i++) assert.ok(Math.abs(got[i]! - v[i]!) < 0.01, `${name}[${i}]`);
  }
  assert.deepEqual(rebuilt.get('text.q.lora_B'), values['text.q.lora_B'], 'F32 is exact');
  assert.throws(() => gatherShard(layout, shardAt(layout, 0, 5), payload), /no scale/);
});

test('partitionFor is stable, in range, and spreads consecutive shards evenly', () => {
  assert.equal(partitionFor(3, 5, 4), partitionFor(3, 5, 4));
  const counts = new Array<number>(6).fill(0);
  for (let s = 0; s < 600; s++) {
    const p = partitionFor(7, s, 6);
    assert.ok(p >= 0 && p < 6);
    counts[p]!++;
  }
  assert.deepEqual(counts, [100, 100, 100, 100, 100, 100]);
  assert.equal(shardKey(7, 12), '7/12');
  assert.throws(() => partitionFor(1, 1, 0), isFedmmError);
  assert.throws(() => partitionFor(-1, 1, 3), isFedmmError);
});
