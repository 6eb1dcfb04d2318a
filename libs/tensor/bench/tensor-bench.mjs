// Throughput of @fedmm/tensor's hot paths, each with a baseline measured in the same run.
//   npx tsc -b libs/tensor && node libs/tensor/bench/tensor-bench.mjs
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import {
  crc32c, decodeUpdateChunk, encodeBf16, encodeF16, encodeUpdateChunk, makeTensor, parseSafetensors,
  serializeSafetensors, sha256Hex,
} from '../dist/index.js';

const require = createRequire(import.meta.url);
const MiB = 1024 * 1024;

function measure(fn, bytes, minMs = 600) {
  fn();
  let iters = 0;
  const t0 = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < minMs) {
    fn();
    iters++;
    elapsed = Number(process.hrtime.bigint() - t0) / 1e6;
  }
  return (bytes * iters) / MiB / (elapsed / 1000);
}

function row(name, mibps, baseline) {
  const ratio = baseline === undefined ? '' : `  x${(mibps / baseline).toFixed(2)} of baseline`;
  console.log(`${name.padEnd(52)} ${mibps.toFixed(0).padStart(8)} MiB/s${ratio}`);
}

const data = new Uint8Array(16 * MiB).map((_, i) => (i * 2654435761) >>> 24);

console.log(`node ${process.version}, ${process.arch}`);
console.log('-- checksums over 16 MiB');
const memcpy = measure(() => data.slice(), data.length);
row('baseline: memcpy (Uint8Array.slice)', memcpy);
const sha = measure(() => sha256Hex(data), data.length);
row('sha256 (node:crypto)', sha, memcpy);
let crcLib;
try { crcLib = require('crc-32/crc32c'); } catch { crcLib = undefined; }
const ours = measure(() => crc32c(data), data.length);
if (crcLib !== undefined) {
  const lib = measure(() => crcLib.buf(data, 0), data.length);
  row('baseline: crc-32/crc32c (npm)', lib);
  row('crc32c (slice-by-16, this library)', ours, lib);
  if ((crcLib.buf(data, 0) >>> 0) !== crc32c(data)) throw new Error('crc mismatch against crc-32/crc32c');
} else {
  row('crc32c (slice-by-16, this library)', ours, memcpy);
}

console.log('-- safetensors, 64 tensors of 64 Ki f32 (16 MiB)');
const tensors = {};
for (let i = 0; i < 64; i++) tensors[`layer${i}.lora_A`] = makeTensor('F32', [256, 256], new Float32Array(65536).map((_, j) => Math.sin(i + j)));
const file = serializeSafetensors(tensors);
row('serializeSafetensors', measure(() => serializeSafetensors(tensors), file.length), memcpy);
row('parseSafetensors (zero-copy views)', measure(() => parseSafetensors(file), file.length), memcpy);
const unaligned = new Uint8Array(file.length + 1);
unaligned.set(file, 1);
row('parseSafetensors (unaligned input, copies)', measure(() => parseSafetensors(unaligned.subarray(1)), file.length), memcpy);

console.log('-- dtype conversion, 4 Mi f32 (16 MiB in)');
const f32 = new Float32Array(4 * MiB).map((_, i) => Math.sin(i) * 100);
row('encodeF16', measure(() => encodeF16(f32), f32.byteLength), memcpy);
row('encodeBf16', measure(() => encodeBf16(f32), f32.byteLength), memcpy);

console.log('-- update chunks, 240 Ki f32 (960 KiB)');
const values = new Float32Array(245760).map((_, i) => Math.cos(i));
const base = { task: 't', round: 1, client: 'c', shard: 0, seq: 0, seqCount: 1, layoutFingerprint: createHash('sha256').update('x').digest('hex'), dtype: 'F32', elementOffset: 0, values, numExamples: 10 };
const enc = encodeUpdateChunk(base);
row('encodeUpdateChunk', measure(() => encodeUpdateChunk(base), values.byteLength), memcpy);
row('decodeUpdateChunk (crc + views)', measure(() => decodeUpdateChunk(enc.headers, enc.value), values.byteLength), memcpy);
row('decodeUpdateChunk (crc + views + finite check)', measure(() => decodeUpdateChunk(enc.headers, enc.value, { requireFinite: true }), values.byteLength), memcpy);
