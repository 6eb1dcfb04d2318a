import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { adapterLayout, adapterScale, initAdapters, mergeAdapters, type AdapterSet } from './adapters.js';
import { denseModules } from './config.js';
import { predictProba } from './evaluate.js';
import { mulberry32 } from './rng.js';
import { setup, smallBase, smallSamples } from './testing/fixtures.js';

before(setup);

/** Adapters with non-zero B, so the product B A is not trivially zero. */
function randomAdapters(seed: number): AdapterSet {
  const base = smallBase();
  const a = initAdapters(base, { rank: 2, alpha: 6, seed });
  const rng = mulberry32(seed + 100);
  for (const [name, t] of a.tensors) if (name.endsWith('.lora_B')) for (let i = 0; i < t.data.length; i++) t.data[i] = rng.normal() * 0.2;
  base.dispose();
  return a;
}

test('a merged kernel equals W + (alpha / r) (B A)^T for every adapted module', () => {
  const base = smallBase();
  const adapters = randomAdapters(5);
  const merged = mergeAdapters(base, adapters);
  const s = adapterScale(adapters);
  assert.equal(s, 3);
  for (const m of denseModules(base.config)) {
    const w = base.weight(`${m.name}.weight`).dataSync();
    const got = merged.weight(`${m.name}.weight`).dataSync();
    const a = adapters.tensors.get(`${m.name}.lora_A`)!.data; // [r, in]
    const b = adapters.tensors.get(`${m.name}.lora_B`)!.data; // [out, r]
    for (let i = 0; i < m.inDim; i++)
      for (let o = 0; o < m.outDim; o++) {
        let ba = 0;
        for (let k = 0; k < 2; k++) ba += b[o * 2 + k]! * a[k * m.inDim + i]!;
        const expected = w[i * m.outDim + o]! + s * ba;
        assert.ok(Math.abs(got[i * m.outDim + o]! - expected) < 1e-5, `${m.name}[${i},${o}]`);
      }
    assert.deepEqual(merged.weight(`${m.name}.bias`).dataSync(), base.weight(`${m.name}.bias`).dataSync());
  }
  merged.dispose();
  base.dispose();
});

test('the merged base predicts what base plus adapters predicts', () => {
  const base = smallBase();
  const adapters = randomAdapters(9);
  const samples = smallSamples(base, 12, 4, undefined, 0.3);
  const merged = mergeAdapters(base, adapters);
  const viaAdapters = predictProba(base, adapters, samples).values;
  const viaMerged = predictProba(merged, undefined, samples).values;
  for (let i = 0; i < viaAdapters.length; i++) assert.ok(Math.abs(viaAdapters[i]! - viaMerged[i]!) < 1e-4);
  const plain = predictProba(base, undefined, samples).values;
  assert.ok(plain.some((p, i) => Math.abs(p - viaAdapters[i]!) > 1e-3), 'adapters with non-zero B change the output');
  merged.dispose();
  base.dispose();
});

test('fresh adapters (B = 0) leave the base output unchanged, and A is seeded and bounded', () => {
  const base = smallBase();
  const adapters = initAdapters(base, { rank: 4, alpha: 8, seed: 3 });
  const samples = smallSamples(base, 6, 2);
  assert.deepEqual(predictProba(base, adapters, samples).values, predictProba(base, undefined, samples).values);
  for (const info of adapterLayout(base, 4)) {
    const t = adapters.tensors.get(info.name)!;
    assert.deepEqual(t.shape, info.shape);
    if (info.part === 'lora_B') assert.ok(t.data.every((v) => v === 0));
    else assert.ok(t.data.every((v) => Math.abs(v) <= 1 / Math.sqrt(info.shape[1])) && t.data.some((v) => v !== 0));
  }
  base.dispose();
});

test('the adapter layout names every dense and attention projection, with stable order and groups', () => {
  const base = smallBase();
  const layout = adapterLayout(base, 2);
  const modules = [...new Set(layout.map((t) => t.module))];
  for (const m of ['image.patch_embed', 'image.attn.q', 'image.attn.k', 'image.attn.v', 'image.attn.o', 'text.proj', 'sensor.proj', 'fusion.dense', 'head']) {
    assert.ok(modules.includes(m), m);
  }
  assert.deepEqual(adapterLayout(base, 2), layout);
  assert.equal(layout.find((t) => t.module === 'head')!.group, 'shared');
  assert.equal(layout.find((t) => t.module === 'sensor.attn.q')!.group, 'sensor');
  base.dispose();
});
