import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { adapterNamesFor, initAdapters, selectAdapters } from './adapters.js';
import { predictProba } from './evaluate.js';
import { train } from './train.js';
import { setup, smallBase, smallSamples } from './testing/fixtures.js';
import type { Modality, Sample } from './types.js';

before(setup);

const SUBSETS: Modality[][] = [['image'], ['text'], ['sensor'], ['image', 'text'], ['image', 'sensor'], ['text', 'sensor'], ['image', 'text', 'sensor']];

function only(s: Sample, keep: readonly Modality[]): Sample {
  return {
    label: s.label,
    ...(keep.includes('image') && s.image ? { image: s.image } : {}),
    ...(keep.includes('text') && s.tokens ? { tokens: s.tokens } : {}),
    ...(keep.includes('sensor') && s.sensor ? { sensor: s.sensor } : {}),
  };
}

test('every subset of modalities gives valid probabilities, alone or mixed in one batch', () => {
  const base = smallBase();
  const adapters = initAdapters(base, { rank: 2, alpha: 4, seed: 1 });
  const full = smallSamples(base, 7, 3);
  const mixed = full.map((s, i) => only(s, SUBSETS[i]!));
  const together = predictProba(base, adapters, mixed).values;
  mixed.forEach((s, i) => {
    const alone = predictProba(base, adapters, [s]).values;
    const row = together.subarray(i * 3, i * 3 + 3);
    assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    // A sample's prediction must not depend on which modalities its batch mates have.
    for (let k = 0; k < 3; k++) assert.ok(Math.abs(alone[k]! - row[k]!) < 1e-5, `subset ${SUBSETS[i]!.join('+')}`);
  });
  base.dispose();
});

test('a sample with no modality, or only padding tokens, is rejected with a clear error', () => {
  const base = smallBase();
  assert.throws(() => predictProba(base, undefined, [{ label: 0 }]), /no image, no non-padding tokens and no sensor/);
  assert.throws(() => predictProba(base, undefined, [{ label: 0, tokens: new Int32Array(4) }]), /no image/);
  assert.throws(() => predictProba(base, undefined, [{ label: 0, image: new Float32Array(10) }]), /resize it first/);
  base.dispose();
});

test('a company without images neither trains nor returns image adapters', () => {
  const base = smallBase();
  const global = initAdapters(base, { rank: 2, alpha: 4, seed: 1 });
  const samples = smallSamples(base, 12, 5, ['text', 'sensor']);
  const r = train({ base, adapters: global, samples, epochs: 1, batchSize: 4, lr: 1e-2, seed: 1 });
  const names = [...r.adapters.tensors.keys()];
  assert.deepEqual(names, adapterNamesFor(base, ['text', 'sensor'], 2));
  assert.ok(names.every((n) => !n.startsWith('image.')));
  assert.ok(names.some((n) => n.startsWith('head.')) && names.some((n) => n.startsWith('fusion.')));
  assert.deepEqual([...r.modalities].sort(), ['sensor', 'text']);
  assert.equal(selectAdapters(base, global, ['image']).tensors.has('text.proj.lora_A'), false);
  base.dispose();
});

test('a sample without images contributes exactly zero gradient to image adapters', () => {
  const base = smallBase();
  const adapters = initAdapters(base, { rank: 2, alpha: 4, seed: 1 });
  const full = smallSamples(base, 4, 8);
  const samples = [full[0]!, only(full[1]!, ['text']), only(full[2]!, ['sensor', 'text']), full[3]!];
  const seen: Map<string, Float32Array>[] = [];
  train({
    base,
    adapters,
    samples,
    epochs: 1,
    batchSize: 4,
    lr: 1e-3,
    seed: 2,
    privatizeGradients: (per) => {
      seen.push(...per);
      const mean = new Map<string, Float32Array>();
      for (const [name, g] of per[0]!) mean.set(name, new Float32Array(g.length));
      return mean;
    },
  });
  assert.equal(seen.length, 4);
  const imageGradNorms = seen.map((g) =>
    [...g].filter(([n]) => n.startsWith('image.')).reduce((s, [, v]) => s + v.reduce((a, x) => a + x * x, 0), 0),
  );
  // The per-example order follows the seeded shuffle; two of the four have images.
  assert.equal(imageGradNorms.filter((n) => n === 0).length, 2);
  assert.equal(imageGradNorms.filter((n) => n > 0).length, 2);
  base.dispose();
});

test('in a mixed batch, image adapters learn only from the samples that have images', () => {
  const base = smallBase();
  const adapters = initAdapters(base, { rank: 2, alpha: 4, seed: 1 });
  const full = smallSamples(base, 3, 11);
  const withImage = full[0]!;
  const step = (textOnly: Sample) =>
    train({ base, adapters, samples: [withImage, textOnly], epochs: 1, batchSize: 2, lr: 0.5, seed: 3, optimizer: 'sgd' }).adapters;
  const a = step(only(full[1]!, ['text']));
  const b = step({ label: 2, tokens: base.tokenizer.encode('completely different words here', 8) });
  let imageChanged = false;
  for (const [name, t] of a.tensors) {
    const other = b.tensors.get(name)!;
    if (name.startsWith('image.')) {
      assert.deepEqual(t.data, other.data, name);
      imageChanged ||= t.data.some((v, i) => v !== adapters.tensors.get(name)!.data[i]);
    }
  }
  assert.ok(imageChanged, 'the image sample does update image adapters');
  assert.notDeepEqual(a.tensors.get('head.lora_B')!.data, b.tensors.get('head.lora_B')!.data);
  base.dispose();
});
