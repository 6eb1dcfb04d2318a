import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFedmmError } from '@fedmm/core';
import { makeTensor, quantizeInt8 } from './dtype.js';
import { PEFT_CONFIG_FILE, PEFT_MODEL_FILE, buildPeftAdapter, exportPeft, loraModules, peftTensorName } from './peft.js';
import { parseSafetensors } from './safetensors.js';

const A = makeTensor('F32', [2, 3], new Float32Array([1, 2, 3, 4, 5, 6])); // [r=2, in=3]
const B = makeTensor('F32', [4, 2], new Float32Array([1, 0, 0, 1, 1, 1, 2, 2])); // [out=4, r=2]

test('PEFT names and the peft orientation pass through unchanged', () => {
  assert.equal(peftTensorName('image.enc.0.q', 'lora_A'), 'base_model.model.image.enc.0.q.lora_A.weight');
  const { tensors, config } = buildPeftAdapter({ tensors: { 'm.lora_A': A, 'm.lora_B': B }, r: 2, loraAlpha: 4, baseModel: 'base' });
  assert.deepEqual(tensors.get('base_model.model.m.lora_A.weight'), A);
  assert.deepEqual(tensors.get('base_model.model.m.lora_B.weight'), B);
  assert.deepEqual(Object.keys(config), [...Object.keys(config)].sort(), 'keys sorted like PEFT writes them');
  assert.equal(config['peft_type'], 'LORA');
  assert.equal(config['modules_to_save'], null);
  assert.equal(config['fan_in_fan_out'], false);
  assert.equal(config['bias'], 'none');
  assert.equal(config['revision'], null);
});

test('the kernel orientation is transposed to torch layout', () => {
  const kA = makeTensor('F32', [3, 2], new Float32Array([1, 4, 2, 5, 3, 6])); // A^T of the above
  const kB = makeTensor('BF16', [2, 4], new Uint16Array([1, 2, 3, 4, 5, 6, 7, 8]));
  const { tensors } = buildPeftAdapter({ tensors: { 'm.lora_a': kA, 'm.lora_b': kB }, r: 2, loraAlpha: 4, baseModel: 'base', orientation: 'kernel' });
  const a = tensors.get('base_model.model.m.lora_A.weight')!;
  assert.deepEqual(a.shape, [2, 3]);
  assert.deepEqual([...(a.data as Float32Array)], [1, 2, 3, 4, 5, 6]);
  const b = tensors.get('base_model.model.m.lora_B.weight')!;
  assert.equal(b.dtype, 'BF16');
  assert.deepEqual(b.shape, [4, 2]);
  assert.deepEqual([...(b.data as Uint16Array)], [1, 5, 2, 6, 3, 7, 4, 8]);
});

test('scaled int8 adapters export as float32; shape and rank mismatches are refused', () => {
  const q = quantizeInt8(A.data as Float32Array);
  const { tensors } = buildPeftAdapter({ tensors: { 'm.lora_A': makeTensor('I8', [2, 3], q.values, q.scale), 'm.lora_B': B }, r: 2, loraAlpha: 4, baseModel: 'base' });
  assert.equal(tensors.get('base_model.model.m.lora_A.weight')!.dtype, 'F32');
  assert.throws(() => buildPeftAdapter({ tensors: { 'm.lora_A': A, 'm.lora_B': B }, r: 3, loraAlpha: 4, baseModel: 'base' }), /PEFT needs lora_A \[3, in\]/);
  assert.throws(() => buildPeftAdapter({ tensors: { 'm.lora_A': A }, r: 2, loraAlpha: 4, baseModel: 'base' }), /lora_B missing/);
  assert.throws(() => loraModules({ 'm.kernel': A }), (e) => isFedmmError(e) && /not a LoRA matrix/.test(e.message));
  assert.throws(() => buildPeftAdapter({ tensors: { 'm.lora_A': A, 'm.lora_B': B }, r: 2, loraAlpha: 4, baseModel: '' }), /baseModel/);
});

test('exportPeft writes adapter_model.safetensors and adapter_config.json and nothing else', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fedmm-peft-'));
  try {
    const out = await exportPeft(join(dir, 'v3'), {
      tensors: new Map([['z.lora_A', A], ['z.lora_B', B], ['a.lora_A', A], ['a.lora_B', B]]),
      r: 2, loraAlpha: 16, baseModel: 'org/base', revision: 'v1.0', targetModules: ['a', 'z'], metadata: { 'fedmm.round': '3' },
    });
    assert.deepEqual((await readdir(join(dir, 'v3'))).sort(), [PEFT_CONFIG_FILE, PEFT_MODEL_FILE]);
    const parsed = parseSafetensors(new Uint8Array(await readFile(out.modelPath)));
    assert.equal(parsed.header.metadata!['format'], 'pt');
    assert.equal(parsed.header.metadata!['fedmm.round'], '3');
    assert.equal(parsed.tensors.size, 4);
    const config = JSON.parse(await readFile(out.configPath, 'utf8')) as Record<string, unknown>;
    assert.equal(config['lora_alpha'], 16);
    assert.equal(config['revision'], 'v1.0');
    assert.deepEqual(config['target_modules'], ['a', 'z']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
