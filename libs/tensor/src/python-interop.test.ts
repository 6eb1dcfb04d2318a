import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeBf16, decodeF16, encodeBf16, encodeF16, makeTensor, quantizeInt8 } from './dtype.js';
import { serializeSafetensors } from './safetensors.js';
import { SafetensorsStreamWriter } from './safetensors-file.js';
import { exportPeft } from './peft.js';

// Files fedmm writes must load in the reference implementation (Python `safetensors`). Python
// and the package are a requirement of this test, not an option: when the package is missing it
// is installed from PyPI into a cached venv.

const run = promisify(execFile);
const checker = fileURLToPath(new URL('../fixtures-src/check_fedmm_files.py', import.meta.url));
const cacheDir = join(process.env['FEDMM_CACHE'] ?? join(homedir(), '.cache', 'fedmm'), 'py');

async function hasSafetensors(python: string): Promise<boolean> {
  try {
    await run(python, ['-c', 'import safetensors, numpy'], { timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

async function python(): Promise<string> {
  const venvPython = join(cacheDir, 'bin', 'python');
  const candidates = [process.env['FEDMM_PYTHON'], venvPython, 'python3'].filter((p): p is string => p !== undefined && p !== '');
  for (const p of candidates) if (await hasSafetensors(p)) return p;
  try {
    await run('python3', ['--version'], { timeout: 10_000 });
  } catch {
    throw new Error('python3 is needed to check that fedmm files load in Python safetensors; install python3 (with venv and pip)');
  }
  if (!existsSync(venvPython)) {
    await mkdir(cacheDir, { recursive: true });
    await run('python3', ['-m', 'venv', cacheDir], { timeout: 120_000 });
  }
  await run(venvPython, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', 'safetensors', 'numpy'], { timeout: 300_000 });
  if (!(await hasSafetensors(venvPython))) throw new Error(`installed safetensors into ${cacheDir} but cannot import it`);
  return venvPython;
}

interface Report {
  files: Record<string, { metadata: Record<string, string> | null; tensors: Record<string, { dtype: string; shape: number[]; values: (number | string)[] }> }>;
  peft?: { config: Record<string, unknown>; metadata: Record<string, string>; names: string[]; deltas: Record<string, { shape: number[]; values: number[] }> };
}

test('files fedmm writes load in Python safetensors, and a PEFT export has the layout PEFT expects', { timeout: 600_000 }, async () => {
  const py = await python();
  const dir = await mkdtemp(join(tmpdir(), 'fedmm-interop-'));
  try {
    const src = new Float32Array([0.1, -2.5, 3.75, 1e-5, -0, 65504]);
    const q = quantizeInt8(src);
    const f16 = encodeF16(src);
    const bf16 = encodeBf16(src);
    const tensors = {
      'w.f32': makeTensor('F32', [2, 3], src),
      'w.f16': makeTensor('F16', [3, 2], f16),
      'w.bf16': makeTensor('BF16', [6], bf16),
      'w.i8': makeTensor('I8', [6], q.values, q.scale),
      'scalar': makeTensor('F32', [], new Float32Array([7])),
      'empty': makeTensor('F16', [0, 4], new Uint16Array(0)),
    };
    await writeFile(join(dir, 'all.safetensors'), serializeSafetensors(tensors, { producer: 'fedmm' }));
    const w = await SafetensorsStreamWriter.toFile(join(dir, 'streamed.safetensors'), Object.entries(tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, ...(t.scale !== undefined ? { scale: t.scale } : {}) })));
    for (const e of w.plan.entries) await w.writeTensor(e.name, tensors[e.name as keyof typeof tensors]);
    await w.close();

    // An adapter in tfjs kernel orientation: A [in=4, r=2], B [r=2, out=3]; y = x W + (alpha/r) x A B.
    const a = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]).map((x) => x / 10);
    const b = new Float32Array([1, -1, 2, 0.5, 0, -2]);
    await exportPeft(join(dir, 'peft'), {
      tensors: { 'text.attn.q.lora_A': makeTensor('F32', [4, 2], a), 'text.attn.q.lora_B': makeTensor('F32', [2, 3], b) },
      r: 2, loraAlpha: 8, baseModel: 'fedmm/base-tiny', orientation: 'kernel', taskType: 'FEATURE_EXTRACTION',
    });

    const { stdout } = await run(py, [checker, dir], { timeout: 120_000, maxBuffer: 16 << 20 });
    const report = JSON.parse(stdout) as Report;
    for (const file of ['all.safetensors', 'streamed.safetensors']) {
      const got = report.files[file]!;
      assert.ok(got, file);
      assert.deepEqual(Object.keys(got.tensors).sort(), Object.keys(tensors).sort());
      assert.equal(got.metadata?.['fedmm.scale.w.i8'], String(q.scale));
      if (file === 'all.safetensors') assert.equal(got.metadata?.['producer'], 'fedmm');
      const num = (v: number | string): number => Number(v);
      assert.deepEqual(got.tensors['w.f32']!.values.map(num), Array.from(src));
      assert.deepEqual(got.tensors['w.f32']!.shape, [2, 3]);
      assert.deepEqual(got.tensors['w.f16']!.values.map(num), Array.from(decodeF16(f16)));
      assert.deepEqual(got.tensors['w.f16']!.shape, [3, 2]);
      assert.deepEqual(got.tensors['w.bf16']!.values.map(num), Array.from(decodeBf16(bf16)));
      assert.equal(got.tensors['w.bf16']!.dtype, 'BF16');
      assert.deepEqual(got.tensors['w.i8']!.values.map(num), Array.from(q.values));
      assert.deepEqual(got.tensors['scalar']!.shape, []);
      assert.deepEqual(got.tensors['empty']!.shape, [0, 4]);
    }

    const peft = report.peft!;
    assert.equal(peft.config['peft_type'], 'LORA');
    assert.equal(peft.config['r'], 2);
    assert.equal(peft.config['lora_alpha'], 8);
    assert.equal(peft.config['base_model_name_or_path'], 'fedmm/base-tiny');
    assert.deepEqual(peft.config['target_modules'], ['text.attn.q']);
    assert.equal(peft.metadata['format'], 'pt');
    assert.deepEqual(peft.names, ['base_model.model.text.attn.q.lora_A.weight', 'base_model.model.text.attn.q.lora_B.weight']);
    // PEFT's delta (torch [out, in]) must be the transpose of fedmm's kernel delta (alpha/r) A B ([in, out]).
    const delta = peft.deltas['text.attn.q']!;
    assert.deepEqual(delta.shape, [3, 4]);
    for (let i = 0; i < 4; i++) {
      for (let o = 0; o < 3; o++) {
        let s = 0;
        for (let k = 0; k < 2; k++) s += a[i * 2 + k]! * b[k * 3 + o]!;
        assert.ok(Math.abs(delta.values[o * 4 + i]! - 4 * s) < 1e-5, `delta[${o}][${i}]`);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
