import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFedmmError } from '@fedmm/core';
import { makeTensor, quantizeInt8 } from './dtype.js';
import { MAX_HEADER_BYTES, parseSafetensors, serializeSafetensors } from './safetensors.js';
import { SafetensorsStreamWriter, openSafetensorsFile, writableSink } from './safetensors-file.js';
import { sha256Hex, sha256HexOfFile } from './sha256.js';
import { PassThrough } from 'node:stream';

function fileWith(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function rejects(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => parseSafetensors(bytes), (e) => isFedmmError(e) && e.code === 'INVALID_ARGUMENT' && pattern.test(e.message), `expected ${pattern}`);
}

const sample = () => {
  const q = quantizeInt8(new Float32Array([0.5, -1, 0.25]));
  return {
    'layer.b': makeTensor('F32', [2, 3], new Float32Array([1, 2, 3, 4, 5, 6])),
    'layer.a': makeTensor('F16', [2], new Uint16Array([0x3c00, 0xc000])),
    emb: makeTensor('BF16', [1, 3], new Uint16Array([0x3f80, 0x4000, 0x4040])),
    q: makeTensor('I8', [3], q.values, q.scale),
    big: makeTensor('F64', [1], new Float64Array([Math.PI])),
  };
};

test('serialize then parse round-trips every tensor, zero-copy, with the I8 scale in metadata', () => {
  const tensors = sample();
  const bytes = serializeSafetensors(tensors, { format: 'pt' });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0, 'header padded to 8 bytes');
  assert.equal(bytes[8 + n - 1] === 0x20 || bytes[8 + n - 1] === 0x7d, true);
  const parsed = parseSafetensors(bytes);
  assert.deepEqual([...parsed.tensors.keys()], ['big', 'layer.b', 'emb', 'layer.a', 'q'], 'dtype rank desc, then name');
  for (const [name, t] of Object.entries(tensors)) {
    const p = parsed.tensors.get(name)!;
    assert.equal(p.dtype, t.dtype);
    assert.deepEqual(p.shape, t.shape);
    assert.deepEqual(Array.from(p.data as ArrayLike<number>), Array.from(t.data as ArrayLike<number>));
    assert.equal(p.zeroCopy, true);
    assert.equal(p.data.buffer, bytes.buffer, 'a view over the input');
  }
  assert.equal(parsed.tensors.get('q')!.scale, tensors.q.scale);
  assert.equal(parsed.header.metadata!['format'], 'pt');
  assert.equal(parsed.header.metadata!['fedmm.scale.q'], String(tensors.q.scale));
  // Re-serializing what was parsed gives the same bytes (content address is stable).
  assert.equal(sha256Hex(serializeSafetensors(parsed.tensors, parsed.header.metadata!)), sha256Hex(bytes));
});

test('unaligned input is copied, and says so', () => {
  const bytes = serializeSafetensors({ w: makeTensor('F32', [2], new Float32Array([1.5, -2])) });
  const shifted = new Uint8Array(bytes.length + 1);
  shifted.set(bytes, 1);
  const p = parseSafetensors(shifted.subarray(1)).tensors.get('w')!;
  assert.equal(p.zeroCopy, false);
  assert.deepEqual([...(p.data as Float32Array)], [1.5, -2]);
});

test('a file with no tensors and no metadata is valid', () => {
  const bytes = serializeSafetensors({});
  assert.equal(parseSafetensors(bytes).tensors.size, 0);
  assert.equal(parseSafetensors(fileWith('{}')).tensors.size, 0);
  const scalar = parseSafetensors(fileWith('{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}', new Uint8Array(4)));
  assert.deepEqual(scalar.tensors.get('s')!.shape, []);
});

test('the parser rejects malformed headers with the tensor and the problem named', () => {
  rejects(new Uint8Array(5), /shorter than the 8-byte/);
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES + 1), true);
  rejects(huge, /exceeds/);
  const past = new Uint8Array(16);
  new DataView(past.buffer).setBigUint64(0, 100n, true);
  rejects(past, /runs past the end/);
  rejects(fileWith('[1,2]'), /does not start with/);
  rejects(fileWith('{"a":'), /does not parse/);
  rejects(fileWith('{"a":1} x'), /does not parse/);
  rejects(fileWith('{"a":1}'), /tensor "a": entry is not an object/);
  rejects(fileWith('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}', new Uint8Array(4)), /tensor "a": unknown field "x"/);
  rejects(fileWith('{"a":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)), /tensor "a": dtype "F17"/);
  rejects(fileWith('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', new Uint8Array(4)), /tensor "a": shape/);
  rejects(fileWith('{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', new Uint8Array(4)), /tensor "a": shape/);
  rejects(fileWith('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}', new Uint8Array(4)), /tensor "a": data_offsets/);
  rejects(fileWith('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', new Uint8Array(4)), /end before they begin/);
  rejects(fileWith('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', new Uint8Array(4)), /tensor "a": F32 shape \[2\] needs 8 bytes/);
  rejects(fileWith('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)), /tensor "a": .*gap/);
  rejects(fileWith('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)), /tensor "b": .*overlap/);
  rejects(fileWith('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(6)), /2 bytes after the last tensor/);
  rejects(fileWith('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', new Uint8Array(4)), /truncated/);
  rejects(fileWith('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)), /key "a" twice/);
  rejects(fileWith('{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)), /key "dtype" twice/);
  rejects(fileWith('{"__metadata__":{"k":1}}'), /value of "k" is number/);
  rejects(fileWith('{"__metadata__":[]}'), /__metadata__ is not an object/);
  rejects(fileWith('{"__metadata__":{"fedmm.scale.a":"0.1"}}'), /not an I8 tensor/);
  rejects(fileWith('{"__metadata__":{"fedmm.scale.a":"0x10"},"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}', new Uint8Array(1)), /tensor "a": scale/);
  rejects(fileWith('{"__metadata__":{"fedmm.scale.a":"-1"},"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}', new Uint8Array(1)), /tensor "a": scale/);
  rejects(fileWith('{"a":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,4]}}', new Uint8Array(4)), /tensor "a": shape/);
  const badUtf8 = fileWith('{"a":1}');
  badUtf8[10] = 0xff;
  rejects(badUtf8, /UTF-8/);
});

test('a null __metadata__ and escaped duplicate-looking keys are accepted', () => {
  const p = parseSafetensors(fileWith('{"__metadata__":null,"a\\u0062":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}  ', new Uint8Array([7, 9])));
  assert.equal(p.header.metadata, null);
  assert.deepEqual([...p.tensors.keys()], ['ab', 'a']);
  rejects(fileWith('{"a\\u0062":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"ab":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', new Uint8Array(2)), /key "ab" twice/);
});

test('the serializer rejects inconsistent input', () => {
  assert.throws(() => serializeSafetensors({ a: { dtype: 'F32', shape: [2], data: new Float32Array(3) } }), /tensor "a": shape \[2\] has 2 elements/);
  assert.throws(() => serializeSafetensors({ a: { dtype: 'F16', shape: [2], data: new Float32Array(2) } }), /Uint16Array/);
  assert.throws(() => serializeSafetensors({ __metadata__: makeTensor('U8', [0], new Uint8Array(0)) }), /reserved/);
  assert.throws(() => serializeSafetensors([['a', makeTensor('U8', [0], new Uint8Array(0))], ['a', makeTensor('U8', [0], new Uint8Array(0))]]), /twice/);
  assert.throws(() => serializeSafetensors({}, { 'fedmm.scale.x': '1' }), /reserved/);
});

test('the stream writer writes the same bytes as the serializer and the file reader reads ranges on demand', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fedmm-tensor-'));
  try {
    const tensors = sample();
    const whole = serializeSafetensors(tensors, { format: 'pt' });
    const path = join(dir, 'a.safetensors');
    const descriptors = Object.entries(tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, ...(t.scale !== undefined ? { scale: t.scale } : {}) }));
    const w = await SafetensorsStreamWriter.toFile(path, descriptors, { format: 'pt' });
    await assert.rejects(w.writeTensor('q', tensors.q), /not next/);
    for (const e of w.plan.entries) {
      const t = tensors[e.name as keyof typeof tensors];
      if (e.name === 'layer.b') {
        // in pieces, as bytes arrive from a stream
        const b = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
        await w.write(b.subarray(0, 5));
        await w.write(b.subarray(5));
      } else {
        await w.writeTensor(e.name, t);
      }
    }
    const { sha256, size } = await w.close();
    assert.equal(size, whole.length);
    assert.equal(sha256, sha256Hex(whole));
    assert.deepEqual(await readFile(path), Buffer.from(whole));
    assert.deepEqual(await sha256HexOfFile(path), { sha256, bytes: size });

    const f = await openSafetensorsFile(path);
    try {
      assert.deepEqual(f.names(), ['big', 'layer.b', 'emb', 'layer.a', 'q']);
      const b = await f.readTensor('layer.b');
      assert.deepEqual([...(b.data as Float32Array)], [1, 2, 3, 4, 5, 6]);
      assert.deepEqual([...(await f.readElements('layer.b', 2, 5) as Float32Array)], [3, 4, 5]);
      assert.equal((await f.readTensor('q')).scale, tensors.q.scale);
      await assert.rejects(f.readElements('layer.b', 4, 7), (e) => isFedmmError(e) && e.code === 'OUT_OF_RANGE');
      assert.throws(() => f.entry('nope'), (e) => isFedmmError(e) && e.code === 'NOT_FOUND');
    } finally {
      await f.close();
    }

    // Truncated on disk: the header check against the file size fails.
    const cut = join(dir, 'cut.safetensors');
    await writeFile(cut, whole.subarray(0, whole.length - 3));
    await assert.rejects(openSafetensorsFile(cut), /truncated/);
    await assert.rejects(openSafetensorsFile(join(dir, 'missing')), (e) => isFedmmError(e) && e.code === 'NOT_FOUND');

    // Incomplete writes are refused at close; abort removes the file.
    const p2 = join(dir, 'b.safetensors');
    const w2 = await SafetensorsStreamWriter.toFile(p2, descriptors);
    await assert.rejects(w2.close(), /only 0 of/);
    await w2.abort();
    await assert.rejects(readFile(p2), /ENOENT/);
    await assert.rejects(SafetensorsStreamWriter.toFile(path, descriptors), (e) => isFedmmError(e) && e.code === 'ALREADY_EXISTS');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the stream writer honours backpressure of a writable stream', async () => {
  const pass = new PassThrough({ highWaterMark: 16 });
  const received: Buffer[] = [];
  const t = makeTensor('F32', [1000], new Float32Array(1000).map((_, i) => i));
  const consumer = (async () => { for await (const c of pass) received.push(c as Buffer); })();
  const w = await SafetensorsStreamWriter.create(writableSink(pass), [{ name: 'x', dtype: 'F32', shape: [1000] }]);
  await w.writeTensor('x', t);
  const { sha256 } = await w.close();
  await consumer;
  const all = Buffer.concat(received);
  assert.equal(sha256, sha256Hex(all));
  assert.deepEqual([...(parseSafetensors(new Uint8Array(all.buffer, all.byteOffset, all.length)).tensors.get('x')!.data as Float32Array)].slice(0, 3), [0, 1, 2]);
});

test('the stream writer accepts zero-length tensors named in order or passed over', async () => {
  const descriptors = [
    { name: 'a', dtype: 'F32' as const, shape: [2] },
    { name: 'e1', dtype: 'F32' as const, shape: [0] },
    { name: 'e2', dtype: 'F16' as const, shape: [0, 3] },
    { name: 'h', dtype: 'F16' as const, shape: [1] },
  ];
  const a = new Float32Array([1, 2]);
  const h = new Uint16Array([0x3c00]);
  const expected = serializeSafetensors({ a: makeTensor('F32', [2], a), e1: makeTensor('F32', [0], new Float32Array(0)), e2: makeTensor('F16', [0, 3], new Uint16Array(0)), h: makeTensor('F16', [1], h) });
  for (const named of [true, false]) {
    const parts: Buffer[] = [];
    const pass = new PassThrough();
    pass.on('data', (c: Buffer) => parts.push(c));
    const w = await SafetensorsStreamWriter.create(writableSink(pass), descriptors);
    assert.deepEqual(w.plan.entries.map((e) => e.name), ['a', 'e1', 'e2', 'h']);
    await w.writeTensor('a', a);
    if (named) {
      await w.writeTensor('e1', new Float32Array(0));
      await w.writeTensor('e2', new Uint16Array(0));
    }
    await w.writeTensor('h', h);
    await w.close();
    assert.deepEqual(new Uint8Array(Buffer.concat(parts)), expected);
  }
});
