import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { initAdapters } from './adapters.js';
import { createBaseModel, saveBase } from './base.js';
import { train } from './train.js';
import { SMALL, setup, smallBase, smallSamples } from './testing/fixtures.js';

before(setup);

test('two trainings with one seed give bit-identical adapters; another seed gives different ones', () => {
  const base = smallBase();
  const adapters = initAdapters(base, { rank: 2, alpha: 4, seed: 1 });
  const samples = smallSamples(base, 24, 6, undefined, 0.3);
  const run = (seed: number) => train({ base, adapters, samples, epochs: 2, batchSize: 8, lr: 5e-3, seed, proxMu: 0.01 });
  const a = run(42);
  const b = run(42);
  const c = run(43);
  assert.deepEqual([...a.adapters.tensors.keys()], [...b.adapters.tensors.keys()]);
  for (const [name, t] of a.adapters.tensors) {
    assert.deepEqual(t.data, b.adapters.tensors.get(name)!.data, name);
  }
  assert.deepEqual(a.stats.epochLoss, b.stats.epochLoss);
  assert.ok([...a.adapters.tensors].some(([name, t]) => t.data.some((v, i) => v !== c.adapters.tensors.get(name)!.data[i])));
  base.dispose();
});

test('initialisation is a function of the seed', () => {
  const a = createBaseModel(SMALL, 7);
  const b = createBaseModel(SMALL, 7);
  const c = createBaseModel(SMALL, 8);
  const sa = saveBase(a).tensors;
  const sb = saveBase(b).tensors;
  const sc = saveBase(c).tensors;
  for (const [name, t] of sa) assert.deepEqual(t.data, sb.get(name)!.data, name);
  assert.notDeepEqual(sa.get('head.weight')!.data, sc.get('head.weight')!.data);
  assert.deepEqual(initAdapters(a, { rank: 2, alpha: 4, seed: 5 }), initAdapters(a, { rank: 2, alpha: 4, seed: 5 }));
  assert.notDeepEqual(
    initAdapters(a, { rank: 2, alpha: 4, seed: 5 }).tensors.get('head.lora_A'),
    initAdapters(a, { rank: 2, alpha: 4, seed: 6 }).tensors.get('head.lora_A'),
  );
  for (const m of [a, b, c]) m.dispose();
});
