import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { sha256Hex } from '@fedmm/tensor';
import { planMaskedUpload } from './masked-upload.js';
import { UpdateDecoder } from './update-decoder.js';
import type { UploadHeaderInfo, UploadPolicy } from './types.js';

const round: UploadPolicy['tensors'] = [
  { name: 'a.lora_A', dtype: 'F32', shape: [7, 5] },
  { name: 'b.lora_B', dtype: 'F32', shape: [20] },
];
const policy: UploadPolicy = { tensors: round, fingerprint: '', maxUpdateNorm: 1, maxUpdateBytes: 0, shardElements: 16, secureAggregation: true, roundAttempt: 1 };

function header(words: Uint32Array, tensors: UploadHeaderInfo['tensors'] = round): UploadHeaderInfo {
  const bytes = new Uint8Array(words.buffer);
  return { taskId: 't', round: 1, uploadId: 'u1', tensors, sha256: sha256Hex(bytes), size: bytes.length, numExamples: 1, samplingRate: 0, noiseMultiplier: 0, steps: 0 };
}

test('a masked upload passes its words through bit for bit, NaN and infinity patterns included, with no norm', () => {
  const words = new Uint32Array(55);
  randomFillSync(words);
  words[3] = 0x7fc00000; // a NaN as float32
  words[40] = 0x7f800000; // +Infinity as float32
  const plan = planMaskedUpload(header(words), policy);
  assert.equal(plan.masked, true);
  assert.deepEqual(plan.shards, [0, 1, 2, 3]);
  const decoder = new UpdateDecoder(plan);
  const bytes = new Uint8Array(words.buffer);
  // Odd piece sizes split words across pieces.
  const records = [...decoder.push(bytes.subarray(0, 7)), ...decoder.push(bytes.subarray(7, 101)), ...decoder.push(bytes.subarray(101))];
  const out = new Uint32Array(55);
  for (const r of records) out.set(new Uint32Array(r.values.buffer, r.values.byteOffset, r.values.length), r.elementOffset);
  assert.deepEqual([...out], [...words]);
  assert.equal(decoder.sumSquares, 0);
});

test('a masked upload must be the whole round in layout order, as 4-byte words', () => {
  const words = new Uint32Array(55);
  assert.throws(() => planMaskedUpload(header(words, [...round].reverse()), policy), /masked vector over every tensor of the round in layout order/);
  assert.throws(() => planMaskedUpload(header(new Uint32Array(35), round.slice(0, 1)), policy), /masked vector over every tensor/);
  const f16 = round.map((t) => ({ ...t, dtype: 'F16' }));
  assert.throws(() => planMaskedUpload(header(words, f16), policy), /declared F16; a masked vector is sent as 4-byte words/);
  assert.throws(() => planMaskedUpload({ ...header(words), size: 4 * 54 }, policy), /header.size/);
});
