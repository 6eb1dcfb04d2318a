import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { FedmmError } from '@fedmm/core';
import { initBackend } from './backend.js';

const nativeInstalled = (() => {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
})();

test('wasm and cpu initialise; auto falls back to wasm without the native packages', async () => {
  const wasm = await initBackend('wasm');
  assert.equal(wasm.backend, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.ok(wasm.threads >= 1);
  const cpu = await initBackend('cpu');
  assert.deepEqual([cpu.backend, cpu.simd], ['cpu', false]);
  const auto = await initBackend('auto');
  assert.equal(auto.backend, nativeInstalled ? 'tensorflow' : 'wasm');
});

test('a native backend is used when installed and refused with FAILED_PRECONDITION when not', async () => {
  if (nativeInstalled) {
    assert.equal((await initBackend('tfjs-node')).backend, 'tensorflow');
  } else {
    await assert.rejects(
      initBackend('tfjs-node'),
      (e: unknown) => e instanceof FedmmError && e.code === 'FAILED_PRECONDITION' && /install @tensorflow\/tfjs-node/.test(e.message),
    );
  }
  await assert.rejects(initBackend('wasm', { threads: 0 }), /threads must be a positive integer/);
});
