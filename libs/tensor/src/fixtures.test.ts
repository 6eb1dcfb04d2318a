import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { decodeF16 } from './dtype.js';
import { parseSafetensors, serializeSafetensors } from './safetensors.js';
import { openSafetensorsFile } from './safetensors-file.js';
import { sha256Hex } from './sha256.js';

// Files written by the reference implementation (Python `safetensors`), made by
// libs/tensor/fixtures-src/make_safetensors_fixtures.py.
const dir = fileURLToPath(new URL('../../../test/fixtures/safetensors/', import.meta.url));

interface Expected {
  files: Record<string, {
    sha256: string;
    metadata: Record<string, string> | null;
    tensors: Record<string, { dtype: string; shape: number[]; values: (number | string)[] }>;
  }>;
}

const expected = JSON.parse(await readFile(`${dir}expected.json`, 'utf8')) as Expected;

function asNumbers(dtype: string, data: ArrayLike<number | bigint>): number[] {
  if (dtype === 'F16') return Array.from(decodeF16(data as Uint16Array));
  return Array.from(data, (x) => Number(x));
}

function want(v: number | string): number {
  return typeof v === 'string' ? Number(v.replace('inf', 'Infinity')) : v;
}

test('fixtures from the reference implementation cover the dtypes fedmm uses', () => {
  const dtypes = new Set(Object.values(expected.files).flatMap((f) => Object.values(f.tensors).map((t) => t.dtype)));
  for (const d of ['F32', 'F16', 'BF16', 'I8']) assert.ok(dtypes.has(d), d);
});

for (const [file, exp] of Object.entries(expected.files)) {
  test(`reads ${file} as written by Python safetensors`, async () => {
    const bytes = new Uint8Array(await readFile(`${dir}${file}`));
    assert.equal(sha256Hex(bytes), exp.sha256);
    const parsed = parseSafetensors(bytes);
    assert.deepEqual(parsed.header.metadata === null ? null : { ...parsed.header.metadata }, exp.metadata);
    assert.deepEqual([...parsed.tensors.keys()].sort(), Object.keys(exp.tensors).sort());
    for (const [name, t] of Object.entries(exp.tensors)) {
      const got = parsed.tensors.get(name)!;
      assert.equal(got.dtype, t.dtype, name);
      assert.deepEqual([...got.shape], t.shape, name);
      const values = asNumbers(got.dtype, got.data);
      const wanted = t.values.map(want);
      if (got.dtype === 'F32') {
        assert.deepEqual(values, wanted.map((x) => Math.fround(x)), name);
      } else {
        assert.deepEqual(values, wanted, name);
      }
    }
    if (file === 'int8_scaled.safetensors') assert.equal(parsed.tensors.get('adapter.q')!.scale, 0.0078125);
    if (file === 'unpadded.safetensors') {
      assert.equal(parsed.tensors.get('v')!.zeroCopy, false);
    } else {
      for (const t of parsed.tensors.values()) assert.equal(t.zeroCopy, true, t.name);
      // Same tensors and metadata -> the very same bytes as the reference writer.
      const again = serializeSafetensors(parsed.tensors, parsed.header.metadata ?? undefined);
      assert.equal(sha256Hex(again), exp.sha256, 'byte-identical to the reference writer');
    }
    const f = await openSafetensorsFile(`${dir}${file}`);
    try {
      for (const name of f.names()) {
        const fromFile = await f.readTensor(name);
        assert.deepEqual(Array.from(fromFile.data as ArrayLike<number | bigint>), Array.from(parsed.tensors.get(name)!.data as ArrayLike<number | bigint>));
      }
    } finally {
      await f.close();
    }
  });
}
