import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { adapterLayout, initAdapters } from './adapters.js';
import { loadBase, saveBase } from './base.js';
import { SENSOR_CHANNELS, SENSOR_STEPS } from './config.js';
import { evaluate, predictProba } from './evaluate.js';
import { importLayersModel } from './import-layers.js';
import { mulberry32 } from './rng.js';
import { train } from './train.js';
import { setup, smallBase, smallSamples } from './testing/fixtures.js';

before(setup);

function sensorClassifier(): tf.Sequential {
  const model = tf.sequential();
  model.add(tf.layers.dense({ inputShape: [SENSOR_CHANNELS * SENSOR_STEPS], units: 16, activation: 'relu', name: 'hidden' }));
  model.add(tf.layers.dropout({ rate: 0.1 }));
  model.add(tf.layers.dense({ units: 3, activation: 'softmax', name: 'out' }));
  // Seeded weights keep the test independent of tfjs's unseeded initialisers.
  const rng = mulberry32(1);
  model.setWeights(model.getWeights().map((w) => tf.tensor(Float32Array.from({ length: w.size }, () => rng.normal() * 0.1), w.shape)));
  return model;
}

test('an imported Dense classifier predicts what the LayersModel predicts and carries LoRA on each Dense', () => {
  const layers = sensorClassifier();
  const base = importLayersModel(layers, { modality: 'sensor' });
  assert.deepEqual([...new Set(adapterLayout(base, 2).map((t) => t.module))], ['hidden', 'out']);
  const samples = smallSamples(smallBase(), 5, 3, ['sensor']);
  const ours = predictProba(base, undefined, samples).values;
  const theirs = tf.tidy(() => (layers.predict(tf.stack(samples.map((s) => tf.tensor1d(s.sensor!)))) as tf.Tensor).dataSync());
  for (let i = 0; i < ours.length; i++) assert.ok(Math.abs(ours[i]! - theirs[i]!) < 1e-5);
  const restored = loadBase(saveBase(base));
  assert.deepEqual(predictProba(restored, undefined, samples).values, ours);
  base.dispose();
  restored.dispose();
  layers.dispose();
});

test('adapters on an imported base train and improve it', () => {
  const layers = sensorClassifier();
  const base = importLayersModel(layers, { modality: 'sensor' });
  const samples = smallSamples(smallBase(), 30, 4, ['sensor']);
  const adapters = initAdapters(base, { rank: 2, alpha: 4, seed: 1 });
  const r = train({ base, adapters, samples, epochs: 5, batchSize: 6, lr: 2e-2, seed: 1 });
  assert.ok(evaluate(base, r.adapters, samples).accuracy > evaluate(base, undefined, samples).accuracy);
  assert.throws(() => predictProba(base, undefined, [{ label: 0, image: new Float32Array(32 * 32 * 3) }]), /reads sensor input/);
  base.dispose();
  layers.dispose();
});

test('unsupported layers and input widths are refused with a reason', () => {
  const conv = tf.sequential();
  conv.add(tf.layers.conv2d({ inputShape: [32, 32, 3], filters: 2, kernelSize: 3 }));
  conv.add(tf.layers.flatten());
  conv.add(tf.layers.dense({ units: 2 }));
  assert.throws(() => importLayersModel(conv, { modality: 'image' }), /is a Conv2D; only Dense/);
  const narrow = tf.sequential();
  narrow.add(tf.layers.dense({ inputShape: [10], units: 2 }));
  assert.throws(() => importLayersModel(narrow, { modality: 'image' }), /reads 10 values, but image input has 3072/);
  conv.dispose();
  narrow.dispose();
});
