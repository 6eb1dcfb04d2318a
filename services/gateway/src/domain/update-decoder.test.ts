import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FedmmError } from '@fedmm/core';
import { bytesOf, createLayout, encodeBf16, encodeF16, quantizeInt8, sha256Hex, type ParamDType } from '@fedmm/tensor';
import { planUpdate, roundLayoutOf } from './update-plan.js';
import { UpdateDecoder, type FilledRecord } from './update-decoder.js';
import type { UploadHeaderInfo, UploadPolicy } from './types.js';

const round: UploadPolicy['tensors'] = [
  { name: 'a.lora_A', dtype: 'F32', shape: [7, 5] },
  { name: 'b.image.lora_A', dtype: 'F32', shape: [13] },
  { name: 'c.lora_B', dtype: 'F32', shape: [3, 11] },
  { name: 'd.sensor.lora_B', dtype: 'F32', shape: [9] },
  { name: 'e.head', dtype: 'F32', shape: [4, 4] },
];

const policy = (over: Partial<UploadPolicy> = {}): UploadPolicy => ({
  tensors: round, fingerprint: '', maxUpdateNorm: 0, maxUpdateBytes: 0, shardElements: 16, secureAggregation: false, roundAttempt: 1, ...over,
});

function values(n: number, seed: number): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = Math.sin(seed * 31 + i) * 0.5;
  return v;
}

/** Builds a client payload: each sent tensor in its dtype; returns the exact F32 values the gateway must produce. */
function payload(send: { name: string; dtype: ParamDType }[]) {
  const sorted = [...send].sort((a, b) => (a.name < b.name ? -1 : 1));
  const parts: Uint8Array[] = [];
  const expected = new Map<string, Float32Array>();
  const tensors: UploadHeaderInfo['tensors'][number][] = [];
  for (const [i, s] of sorted.entries()) {
    const spec = round.find((t) => t.name === s.name)!;
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const v = values(n, i + 1);
    if (s.dtype === 'F32') {
      parts.push(bytesOf(v));
      expected.set(s.name, v);
      tensors.push({ name: s.name, dtype: 'F32', shape: spec.shape });
    } else if (s.dtype === 'F16' || s.dtype === 'BF16') {
      const bits = s.dtype === 'F16' ? encodeF16(v) : encodeBf16(v);
      parts.push(bytesOf(bits));
      const back = new Float32Array(n);
      for (let k = 0; k < n; k++) {
        const b = bits[k]!;
        if (s.dtype === 'BF16') back[k] = new Float32Array(new Uint32Array([b << 16]).buffer)[0]!;
      }
      if (s.dtype === 'F16') {
        for (let k = 0; k < n; k++) back[k] = halfToFloat(bits[k]!);
      }
      expected.set(s.name, back);
      tensors.push({ name: s.name, dtype: s.dtype, shape: spec.shape });
    } else {
      const q = quantizeInt8(v);
      const scale = Math.fround(q.scale);
      parts.push(bytesOf(q.values));
      expected.set(s.name, Float32Array.from(q.values, (x) => x * scale));
      tensors.push({ name: s.name, dtype: 'I8', shape: spec.shape, scale });
    }
  }
  const bytes = Buffer.concat(parts);
  const header: UploadHeaderInfo = {
    taskId: 't', round: 3, uploadId: 'u1', tensors, sha256: sha256Hex(bytes), size: bytes.length, numExamples: 10, samplingRate: 0, noiseMultiplier: 0, steps: 0,
  };
  return { bytes, header, expected };
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

function feed(decoder: UpdateDecoder, bytes: Uint8Array, pieces: number[]): FilledRecord[] {
  const out: FilledRecord[] = [];
  let at = 0;
  let i = 0;
  while (at < bytes.length) {
    const n = Math.min(pieces[i++ % pieces.length]!, bytes.length - at);
    // Copy into an odd offset so the decoder must cope with unaligned input.
    const buf = new Uint8Array(n + 1);
    buf.set(bytes.subarray(at, at + n), 1);
    out.push(...decoder.push(buf.subarray(1)));
    at += n;
  }
  return out;
}

test('a subset of tensors in mixed dtypes lands on the round layout, cut at shard boundaries, whatever the piece sizes', () => {
  const send = [
    { name: 'a.lora_A', dtype: 'F32' as const },
    { name: 'c.lora_B', dtype: 'F16' as const },
    { name: 'd.sensor.lora_B', dtype: 'BF16' as const },
    { name: 'e.head', dtype: 'I8' as const },
  ];
  const { bytes, header, expected } = payload(send);
  const layout = roundLayoutOf(policy());
  const plan = planUpdate(header, policy());
  for (const pieces of [[1], [3, 7], [5], [bytes.length]]) {
    const decoder = new UpdateDecoder(plan);
    const records = feed(decoder, bytes, pieces);
    assert.equal(records.length, plan.records.length);
    assert.equal(decoder.emittedThrough, bytes.length);
    const got = new Float32Array(layout.totalElements).fill(Number.NaN);
    const seqs = new Map<number, number[]>();
    for (const r of records) {
      assert.equal(Math.floor(r.elementOffset / 16), r.shard, 'a chunk stays inside its shard');
      assert.equal(Math.floor((r.elementOffset + r.count - 1) / 16), r.shard);
      got.set(r.values, r.elementOffset);
      seqs.set(r.shard, [...(seqs.get(r.shard) ?? []), r.seq]);
    }
    for (const [shard, s] of seqs) assert.deepEqual(s, [...Array(plan.seqCounts.get(shard)).keys()]);
    let sum = 0;
    for (const e of layout.entries) {
      const exp = expected.get(e.name);
      const slice = got.subarray(e.offset, e.offset + e.length);
      if (!exp) assert.ok(slice.every(Number.isNaN), `${e.name} was not sent and must not be written`);
      else {
        assert.deepEqual(slice, exp, `${e.name} with pieces ${pieces.join(',')}`);
        for (const v of exp) sum += v * v;
      }
    }
    assert.ok(Math.abs(decoder.sumSquares - sum) < 1e-9 * Math.max(1, sum));
  }
});

test('the skipped image tensor splits runs: two chunks in the shard where it would sit', () => {
  const { header } = payload([{ name: 'a.lora_A', dtype: 'F32' }, { name: 'c.lora_B', dtype: 'F32' }]);
  const plan = planUpdate(header, policy());
  // a: elements [0,35), b (absent): [35,48), c: [48,81).
  assert.deepEqual(plan.records.map((r) => [r.shard, r.seq, r.elementOffset, r.count]), [
    [0, 0, 0, 16], [1, 0, 16, 16], [2, 0, 32, 3], [3, 0, 48, 16], [4, 0, 64, 16], [5, 0, 80, 1],
  ]);
  assert.deepEqual(plan.shards, [0, 1, 2, 3, 4, 5]);
  // With 64-element shards, a and c share shard 0 around the gap: two chunks, seq 0 and 1.
  const wide = planUpdate(header, policy({ shardElements: 64 }));
  assert.deepEqual(wide.records.map((r) => [r.shard, r.seq, r.elementOffset, r.count]), [[0, 0, 0, 35], [0, 1, 48, 16], [1, 0, 64, 17]]);
  assert.equal(wide.seqCounts.get(0), 2);
  const whole = planUpdate(payload(round.map((t) => ({ name: t.name, dtype: 'F32' as const }))).header, policy());
  assert.equal(whole.records.length, Math.ceil(106 / 16));
});

test('header validation names what is wrong', () => {
  const { header } = payload([{ name: 'a.lora_A', dtype: 'F32' }]);
  const code = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof FedmmError);
      return `${e.code}: ${e.message}`;
    }
    return 'ok';
  };
  assert.match(code(() => planUpdate({ ...header, tensors: [{ name: 'zz', dtype: 'F32', shape: [1] }] }, policy())), /^INVALID_ARGUMENT: tensor "zz" is not part/);
  assert.match(code(() => planUpdate({ ...header, tensors: [{ name: 'a.lora_A', dtype: 'F32', shape: [5, 7] }] }, policy())), /^INVALID_ARGUMENT: .*\[5, 7\].*\[7, 5\]/);
  assert.match(code(() => planUpdate({ ...header, tensors: [{ name: 'a.lora_A', dtype: 'F64', shape: [7, 5] }] }, policy())), /^INVALID_ARGUMENT: .*dtype F64/);
  assert.match(code(() => planUpdate({ ...header, tensors: [{ name: 'a.lora_A', dtype: 'I8', shape: [7, 5], scale: 0 }] }, policy())), /^INVALID_ARGUMENT: .*positive finite scale/);
  assert.match(code(() => planUpdate({ ...header, size: header.size + 1 }, policy())), /^INVALID_ARGUMENT: header.size/);
  assert.match(code(() => planUpdate(header, policy({ maxUpdateBytes: 100 }))), /^RESOURCE_EXHAUSTED: .*limit of 100 bytes/);
  assert.match(code(() => planUpdate({ ...header, uploadId: 'a b' }, policy())), /^INVALID_ARGUMENT: upload id/);
  assert.match(code(() => planUpdate({ ...header, tensors: [] }, policy())), /^INVALID_ARGUMENT: .*no tensors/);
  assert.equal(code(() => planUpdate(header, policy())), 'ok');
});

test('a NaN is reported with its tensor and element', () => {
  const { bytes, header } = payload([{ name: 'a.lora_A', dtype: 'F32' }, { name: 'c.lora_B', dtype: 'F16' }]);
  const bad = Buffer.from(bytes);
  // Element 4 of c.lora_B (F16 NaN = 0x7e00), after the 35 F32 elements of a.
  bad.writeUInt16LE(0x7e00, 35 * 4 + 4 * 2);
  const decoder = new UpdateDecoder(planUpdate(header, policy()));
  assert.throws(() => feed(decoder, bad, [7]), (e: unknown) => e instanceof FedmmError && e.code === 'INVALID_ARGUMENT' && /"c.lora_B" element 4 is NaN/.test(e.message));
});

test('the plan is deterministic, so resumed uploads reproduce sequence numbers', () => {
  const send = round.map((t) => ({ name: t.name, dtype: 'BF16' as const }));
  const a = planUpdate(payload(send).header, policy());
  const b = planUpdate(payload([...send].reverse()).header, policy());
  assert.deepEqual(a.records, b.records);
  assert.equal(a.roundFingerprint, createLayout(round.map((t) => ({ ...t, dtype: 'F32' as const }))).fingerprint);
  assert.equal(planUpdate(payload(send).header, policy({ fingerprint: 'f'.repeat(64) })).roundFingerprint, 'f'.repeat(64));
});

test('a decoder continued at any checkpoint of another emits the same remaining records and the same sum of squares', () => {
  const send = [
    { name: 'a.lora_A', dtype: 'F32' as const },
    { name: 'c.lora_B', dtype: 'F16' as const },
    { name: 'd.sensor.lora_B', dtype: 'BF16' as const },
    { name: 'e.head', dtype: 'I8' as const },
  ];
  const { bytes, header } = payload(send);
  const plan = planUpdate(header, policy());
  const whole = new UpdateDecoder(plan);
  const all = feed(whole, bytes, [5]);
  // Checkpoints as the gateway takes them: after a piece that completed records, at emittedThrough.
  const first = new UpdateDecoder(plan);
  const checkpoints: { offset: number; sumSquares: number }[] = [];
  for (let at = 0; at < bytes.length; at += 7) {
    if (first.push(bytes.subarray(at, Math.min(at + 7, bytes.length))).length > 0) checkpoints.push({ offset: first.emittedThrough, sumSquares: first.emittedSumSquares });
  }
  assert.ok(checkpoints.length >= plan.records.length - 1);
  for (const cp of checkpoints) {
    const next = new UpdateDecoder(plan, cp);
    assert.equal(next.processed, cp.offset);
    assert.equal(next.emittedThrough, cp.offset);
    const rest = feed(next, bytes.subarray(cp.offset), [3, 11]);
    assert.deepEqual(rest.map((r) => [r.shard, r.seq, [...r.values]]), all.slice(all.length - rest.length).map((r) => [r.shard, r.seq, [...r.values]]), `resumed at ${cp.offset}`);
    // Piece sizes group the additions differently: equal up to rounding.
    assert.ok(Math.abs(next.sumSquares - whole.sumSquares) < 1e-12 * whole.sumSquares);
    assert.equal(next.emittedSumSquares, next.sumSquares);
  }
  // Mid-record and mid-element offsets are not checkpoints.
  assert.throws(() => new UpdateDecoder(plan, { offset: plan.records[1]!.byteStart + 4, sumSquares: 0 }), /not a chunk boundary/);
  assert.throws(() => new UpdateDecoder(plan, { offset: plan.records[1]!.byteStart, sumSquares: Number.NaN }), /not a chunk boundary/);
});
