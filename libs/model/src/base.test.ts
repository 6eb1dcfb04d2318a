import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { FedmmError } from '@fedmm/core';
import { BASE_METADATA_KEYS, loadBase, saveBase } from './base.js';
import { baseWeightSpecs, compileModelConfig } from './config.js';
import { predictProba } from './evaluate.js';
import { Tokenizer } from './tokenizer.js';
import { setup, smallBase, smallSamples } from './testing/fixtures.js';

before(setup);

test('saveBase then loadBase gives the same weights, config, tokenizer and predictions', () => {
  const original = smallBase(3);
  original.tokenizer.fit(['the alpha report', 'alpha bravo']);
  const stored = saveBase(original);
  assert.deepEqual([...stored.tensors.keys()], baseWeightSpecs(original.config).map((s) => s.name));
  const restored = loadBase(stored);
  assert.deepEqual(restored.config, original.config);
  assert.deepEqual(restored.tokenizer.vocabulary, ['alpha', 'bravo', 'report', 'the']);
  for (const [name, t] of stored.tensors) assert.deepEqual(restored.weight(name).dataSync(), t.data, name);
  const samples = smallSamples(original, 5, 1);
  assert.deepEqual(predictProba(restored, undefined, samples).values, predictProba(original, undefined, samples).values);
  original.dispose();
  restored.dispose();
});

test('loadBase rejects missing metadata, missing tensors and wrong shapes with INVALID_ARGUMENT', () => {
  const base = smallBase();
  const stored = saveBase(base);
  const isInvalid = (re: RegExp) => (e: unknown) => e instanceof FedmmError && e.code === 'INVALID_ARGUMENT' && re.test(e.message);
  assert.throws(() => loadBase({ tensors: stored.tensors, metadata: {} }), isInvalid(/metadata must hold/));
  const missing = new Map(stored.tensors);
  missing.delete('head.weight');
  assert.throws(() => loadBase({ tensors: missing, metadata: stored.metadata }), isInvalid(/head.weight is missing/));
  const wrong = new Map(stored.tensors);
  wrong.set('head.bias', { shape: [7], data: new Float32Array(7) });
  assert.throws(() => loadBase({ tensors: wrong, metadata: stored.metadata }), isInvalid(/head.bias has shape \[7\]/));
  const badConfig = { ...stored.metadata, [BASE_METADATA_KEYS.config]: '{"kind":"other"}' };
  assert.throws(() => loadBase({ tensors: stored.tensors, metadata: badConfig }), isInvalid(/unknown kind/));
  base.dispose();
});

test('model config validation names the bad field', () => {
  assert.throws(() => compileModelConfig({ numClasses: 1 }), /numClasses must be at least 2/);
  assert.throws(() => compileModelConfig({ numClasses: 3, patchSize: 5 }), /patchSize 5 must divide/);
  assert.throws(() => compileModelConfig({ numClasses: 3, sensorWindow: 7 }), /sensorWindow 7 must divide/);
  assert.ok(Object.isFrozen(compileModelConfig({ numClasses: 3 })));
});

test('the tokenizer hashes unseen words stably, gives fitted words their own ids, and round-trips', () => {
  const plain = new Tokenizer({ vocabSize: 64 });
  const ids = plain.encode('Pump pressure HIGH, pump!', 6);
  assert.equal(ids.length, 6);
  assert.equal(ids[0], ids[3]);
  assert.deepEqual([...ids.subarray(4)], [0, 0]);
  assert.ok([...ids.subarray(0, 4)].every((id) => id >= 1 && id < 64));
  assert.deepEqual(new Tokenizer({ vocabSize: 64 }).encode('pump pressure high', 3), ids.subarray(0, 3));
  const fitted = new Tokenizer({ vocabSize: 64, maxWords: 2 }).fit(['b a', 'a c', 'a b']);
  assert.deepEqual(fitted.vocabulary, ['a', 'b']);
  assert.deepEqual([...fitted.encode('a b zzz', 3)].slice(0, 2), [1, 2]);
  assert.ok(fitted.idOf('zzz') >= 3);
  const back = Tokenizer.load(fitted.serialize());
  assert.deepEqual(back.toJSON(), fitted.toJSON());
  assert.deepEqual(back.encode('zzz a q', 4), fitted.encode('zzz a q', 4));
  assert.equal(plain.encode('x '.repeat(20), 5).length, 5);
  assert.throws(() => Tokenizer.load('{"format":"other"}'), /not a fedmm.tokenizer/);
  assert.throws(() => plain.encode('a', 0), /maxLen/);
});
