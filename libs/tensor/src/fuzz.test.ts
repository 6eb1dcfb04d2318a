import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedmmError } from '@fedmm/core';
import { DTYPES, PARAM_DTYPES, bytesPerElement, makeTensor, quantizeInt8, type DType } from './dtype.js';
import { parseSafetensors, serializeSafetensors } from './safetensors.js';
import { CHUNK_HEADERS, decodeUpdateChunk, encodeUpdateChunk } from './chunk.js';
import { crc32c } from './crc32c.js';
import { StreamVerifier, streamChunks } from './upload.js';
import { sha256Hex } from './sha256.js';

// Bounded fuzzing: random and mutated inputs for a fixed time per target (FEDMM_FUZZ_MS, default
// 3000). Inputs come from a seeded PRNG (FEDMM_FUZZ_SEED) so a failure can be replayed; only
// FedmmError may escape, never a RangeError, TypeError or a hang.

const BUDGET_MS = Number(process.env['FEDMM_FUZZ_MS'] ?? 3000);
const SEED = Number(process.env['FEDMM_FUZZ_SEED'] ?? 0x5eed);

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = prng(SEED);
const int = (n: number): number => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = int(256);
  return b;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.subarray(0, 256)).toString('hex');
}

function mutate(src: Uint8Array): Uint8Array {
  let b: Uint8Array = src.slice();
  const rounds = 1 + int(4);
  for (let r = 0; r < rounds; r++) {
    switch (int(8)) {
      case 0: if (b.length > 0) b[int(b.length)]! ^= 1 << int(8); break;
      case 1: if (b.length > 0) b[int(b.length)] = int(256); break;
      case 2: b = b.subarray(0, int(b.length + 1)).slice(); break;
      case 3: { const e = new Uint8Array(b.length + 1 + int(16)); e.set(b); e.set(randomBytes(e.length - b.length), b.length); b = e; break; }
      case 4: if (b.length >= 8) new DataView(b.buffer, b.byteOffset).setUint32(0, int(2 ** 32), true); break;
      case 5: if (b.length >= 8) new DataView(b.buffer, b.byteOffset).setUint32(4, pick([0, 1, int(2 ** 32)]), true); break;
      case 6: if (b.length > 9) { // swap a header byte for a JSON-significant one
        b[8 + int(b.length - 8)] = pick([0x22, 0x2c, 0x3a, 0x5b, 0x5d, 0x7b, 0x7d, 0x30, 0x39, 0x2d, 0x5c, 0x20]);
        break;
      }
        break;
      default: { // move a range
        if (b.length < 4) break;
        const from = int(b.length);
        const len = int(Math.min(16, b.length - from));
        const to = int(b.length - len);
        b.copyWithin(to, from, from + len);
      }
    }
  }
  return b;
}

function randomShape(): number[] {
  const rank = int(4);
  return Array.from({ length: rank }, () => pick([0, 1, 2, 3, 5, 8]));
}

function validFile(): Uint8Array {
  const tensors: Record<string, ReturnType<typeof makeTensor>> = {};
  const count = int(5);
  for (let i = 0; i < count; i++) {
    const dtype = pick<DType>(DTYPES.filter((d) => !d.endsWith('64') || d === 'F64'));
    const shape = randomShape();
    const n = shape.reduce((a, b) => a * b, 1);
    const bytes = randomBytes(n * bytesPerElement(dtype));
    const ctor = makeTensorData(dtype, bytes);
    tensors[`t${i}.${pick(['w', 'b', 'lora_A', '\u00e9', '"q"'])}`] = makeTensor(dtype, shape, ctor);
  }
  const meta = rand() < 0.5 ? undefined : { format: pick(['pt', 'np', '']), [`k${int(9)}`]: 'v' };
  return serializeSafetensors(tensors, meta);
}

function makeTensorData(dtype: DType, bytes: Uint8Array): never {
  const size = bytesPerElement(dtype);
  const buf = bytes.buffer;
  const n = bytes.length / size;
  switch (dtype) {
    case 'F32': return new Float32Array(buf, 0, n) as never;
    case 'F64': return new Float64Array(buf, 0, n) as never;
    case 'I32': return new Int32Array(buf, 0, n) as never;
    case 'U32': return new Uint32Array(buf, 0, n) as never;
    case 'I16': return new Int16Array(buf, 0, n) as never;
    case 'U16': case 'F16': case 'BF16': return new Uint16Array(buf, 0, n) as never;
    case 'I8': return new Int8Array(buf, 0, n) as never;
    default: return new Uint8Array(buf, 0, n) as never;
  }
}

function randomHeaderFile(): Uint8Array {
  // Structured junk: headers that are valid JSON but bend each rule.
  const entries: string[] = [];
  let offset = 0;
  const n = int(4);
  for (let i = 0; i < n; i++) {
    const dtype = rand() < 0.9 ? pick(DTYPES) : pick(['F4', 'f32', '', 'BOOL ']);
    const shape = rand() < 0.9 ? randomShape() : pick([[-1], [1.5], ['2'], [2 ** 60], null, {}]);
    const size = Array.isArray(shape) && shape.every((d) => typeof d === 'number') ? (shape).reduce((a, b) => a * b, 1) * (DTYPES.includes(dtype as DType) ? bytesPerElement(dtype as DType) : 4) : 4;
    const begin = rand() < 0.85 ? offset : int(offset + 10);
    const end = rand() < 0.85 ? begin + size : int(begin + 20) - 5;
    offset = Math.max(offset, end);
    entries.push(`${JSON.stringify(pick(['a', 'b', 'a', '__metadata__', `t${i}`]))}:{"dtype":${JSON.stringify(dtype)},"shape":${JSON.stringify(shape)},"data_offsets":[${begin},${end}]}`);
  }
  if (rand() < 0.3) entries.push(`"__metadata__":${pick(['{"a":"b"}', '{"a":1}', 'null', '[]', '{"fedmm.scale.a":"0.5"}'])}`);
  const json = new TextEncoder().encode(`{${entries.join(',')}}${' '.repeat(int(8))}`);
  const data = randomBytes(Math.min(4096, Math.max(0, offset + int(3) - 1)));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function expectOnlyFedmmError(what: string, input: Uint8Array, fn: () => void): 'ok' | 'rejected' {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (isFedmmError(e)) {
      assert.ok(e.message.length > 10, `${what}: error message too terse: ${e.message}`);
      return 'rejected';
    }
    assert.fail(`${what} threw ${(e as Error)?.name}: ${(e as Error)?.message}\ninput (first 256 bytes, seed ${SEED}): ${hex(input)}`);
  }
}

test(`fuzz: the safetensors parser takes random and mutated bytes for ${BUDGET_MS} ms and only raises FedmmError`, { timeout: BUDGET_MS * 20 + 30_000 }, () => {
  const seeds = Array.from({ length: 16 }, validFile);
  const stop = Date.now() + BUDGET_MS;
  const stats = { ok: 0, rejected: 0 };
  while (Date.now() < stop) {
    const r = int(10);
    const input = r === 0 ? randomBytes(int(64)) : r < 4 ? randomHeaderFile() : r < 5 ? validFile() : mutate(pick(seeds));
    const outcome = expectOnlyFedmmError('parseSafetensors', input, () => {
      const parsed = parseSafetensors(input);
      let total = 0;
      for (const t of parsed.tensors.values()) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        assert.equal(t.data.length, n);
        total += t.data.byteLength;
      }
      assert.equal(total, parsed.header.dataLength);
      // What parses re-serializes into a file that parses to the same tensors.
      const again = parseSafetensors(serializeSafetensors(parsed.tensors, parsed.header.metadata ?? undefined));
      assert.deepEqual([...again.tensors.keys()].sort(), [...parsed.tensors.keys()].sort());
    });
    stats[outcome]++;
  }
  assert.ok(stats.ok > 10 && stats.rejected > 100, `too few cases: ${JSON.stringify(stats)}`);
});

test(`fuzz: the chunk decoder takes mutated headers and values for ${BUDGET_MS} ms and only raises FedmmError`, { timeout: BUDGET_MS * 20 + 30_000 }, () => {
  const stop = Date.now() + BUDGET_MS;
  const stats = { ok: 0, rejected: 0 };
  const names = Object.values(CHUNK_HEADERS);
  while (Date.now() < stop) {
    const dtype = pick(PARAM_DTYPES);
    const n = int(64);
    const f = new Float32Array(n).map(() => (rand() - 0.5) * 10);
    const q = quantizeInt8(f);
    const values = dtype === 'F32' ? f : dtype === 'I8' ? q.values : new Uint16Array(n).map(() => int(65536));
    const enc = encodeUpdateChunk({
      task: `t${int(3)}`, round: int(2 ** 32), client: 'c', shard: int(100), seq: 0, seqCount: 1 + int(3),
      layoutFingerprint: sha256Hex(String(int(5))), dtype, elementOffset: int(1e6), values, numExamples: int(1000),
      ...(dtype === 'I8' ? { scale: q.scale } : {}),
    });
    const headers: Record<string, string | Uint8Array | (string | Uint8Array)[] | undefined> = rand() < 0.5
      ? { ...enc.headers }
      : Object.fromEntries(Object.entries(enc.headers).map(([k, v]) => [k, Buffer.from(v)]));
    let value: Uint8Array = enc.value;
    const rounds = int(4);
    for (let r = 0; r < rounds; r++) {
      const k = pick(names);
      switch (int(9)) {
        case 0: delete headers[k]; break;
        case 1: headers[k] = pick(['', '-1', '1e3', 'NaN', '9'.repeat(20), ' 1', 'F32', 'I8', '0.5', 'abc', '\u0000']); break;
        case 2: headers[k] = randomBytes(int(12)); break;
        case 3: headers[k] = [String(int(5)), 'x']; break;
        case 4: value = mutate(value); break;
        case 5: { const shifted = new Uint8Array(value.length + 1); shifted.set(value, 1); value = shifted.subarray(1); break; }
        case 6: headers[k] = String(int(2 ** 32) * pick([1, 2 ** 21])); break;
        case 7: value = randomBytes(int(300)); headers[CHUNK_HEADERS.crc32c] = crc32c(value).toString(16).padStart(8, '0'); break;
        default: (headers as Record<string, unknown>)[k] = pick([null, 5, {}, undefined]);
      }
    }
    const input = value;
    const outcome = expectOnlyFedmmError('decodeUpdateChunk', input, () => {
      const d = decodeUpdateChunk(headers, value, { requireFinite: rand() < 0.5 });
      assert.equal(d.values.byteLength, value.length);
      assert.equal(d.count * bytesPerElement(d.dtype), value.length);
      assert.equal(d.crc32c, crc32c(value));
    });
    stats[outcome]++;
  }
  assert.ok(stats.ok > 10 && stats.rejected > 100, `too few cases: ${JSON.stringify(stats)}`);
});

test(`fuzz: the upload stream verifier takes random chunk sequences for ${Math.round(BUDGET_MS / 3)} ms and only raises FedmmError`, { timeout: BUDGET_MS * 20 + 30_000 }, () => {
  const stop = Date.now() + BUDGET_MS / 3;
  let finished = 0;
  while (Date.now() < stop) {
    const payload = randomBytes(int(5000));
    const v = new StreamVerifier({ size: payload.length, sha256: sha256Hex(payload) });
    const chunks = [...streamChunks(payload, 0, 1 + int(700))];
    for (let i = 0; i < chunks.length * 2; i++) {
      const c = pick(chunks);
      const mangled = rand() < 0.2 ? { offset: pick([c.offset, -1, 1.5, NaN, c.offset + 1]), data: rand() < 0.5 ? c.data : mutate(c.data), crc32c: pick([c.crc32c, -1, 2 ** 33, c.crc32c ^ 1]) } : c;
      expectOnlyFedmmError('StreamVerifier.accept', c.data, () => { v.accept(mangled); });
    }
    for (const c of streamChunks(payload, v.bytesReceived, 1 + int(700))) v.accept(c);
    assert.equal(v.finish(), sha256Hex(payload));
    finished++;
  }
  assert.ok(finished > 10);
});
