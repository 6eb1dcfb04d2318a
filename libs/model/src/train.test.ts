import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { adapterDelta, adapterNorm, initAdapters, mergeAdapters } from './adapters.js';
import { evaluate, evaluatePersonalized } from './evaluate.js';
import { pretrain, train, trainPersonal } from './train.js';
import { renderProgress } from './progress.js';
import type { TrainProgress } from './loop.js';
import { SMALL, setup, smallBase, smallSamples } from './testing/fixtures.js';

before(setup);

test('training reduces the loss and raises accuracy on a separable task, reporting progress', () => {
  const base = smallBase();
  const adapters = initAdapters(base, { rank: 4, alpha: 8, seed: 1 });
  const samples = smallSamples(base, 48, 2, undefined, 0.3);
  const before = evaluate(base, adapters, samples);
  const progress: TrainProgress[] = [];
  const r = train({ base, adapters, samples, epochs: 4, batchSize: 8, lr: 1e-2, seed: 1, onProgress: (p) => progress.push(p) });
  const after = evaluate(base, r.adapters, samples);
  assert.ok(r.stats.epochLoss[3]! < r.stats.epochLoss[0]! * 0.7, `loss ${r.stats.epochLoss.join(' -> ')}`);
  assert.ok(after.loss < before.loss);
  assert.ok(after.accuracy > before.accuracy && after.accuracy >= 0.8, `accuracy ${before.accuracy} -> ${after.accuracy}`);
  assert.equal(progress.length, 4 * 6);
  assert.deepEqual([progress[0]!.epoch, progress[0]!.step, progress.at(-1)!.epoch, progress.at(-1)!.step], [1, 1, 4, 6]);
  assert.ok(r.stats.samplesPerSec > 0 && r.stats.samples === 4 * 48);
  assert.match(renderProgress(progress.at(-1)!), /^\[#+\] epoch 4\/4 step 6\/6 loss \d/);
  assert.equal(after.perClass.reduce((s, c) => s + c.support, 0), 48);
  base.dispose();
});

test('a large FedProx mu keeps the local update closer to the global adapters', () => {
  const base = smallBase();
  const global = initAdapters(base, { rank: 2, alpha: 4, seed: 1 });
  const samples = smallSamples(base, 24, 3);
  const run = (proxMu: number) =>
    adapterNorm(adapterDelta(train({ base, adapters: global, samples, epochs: 2, batchSize: 8, lr: 0.05, seed: 1, optimizer: 'sgd', proxMu }).adapters, global));
  const free = run(0);
  const prox = run(5);
  assert.ok(prox < free * 0.8, `update norm with mu=5 (${prox}) vs mu=0 (${free})`);
  base.dispose();
});

test('clipNorm bounds the L2 norm of the update', () => {
  const base = smallBase();
  const global = initAdapters(base, { rank: 2, alpha: 4, seed: 1 });
  const samples = smallSamples(base, 16, 4);
  const r = train({ base, adapters: global, samples, epochs: 2, batchSize: 8, lr: 1e-2, seed: 1, clipNorm: 0.05 });
  assert.ok(r.stats.updateNorm > 0.05 && r.stats.clipped);
  assert.ok(Math.abs(adapterNorm(adapterDelta(r.adapters, global)) - 0.05) < 1e-4);
  const loose = train({ base, adapters: global, samples, epochs: 2, batchSize: 8, lr: 1e-2, seed: 1, clipNorm: 1e6 });
  assert.equal(loose.stats.clipped, false);
  assert.throws(() => train({ base, adapters: global, samples, epochs: 1, batchSize: 8, lr: 1e-2, seed: 1, clipNorm: 0 }), /clipNorm/);
  base.dispose();
});

test('the per-example gradient hook sees one gradient map per example and decides the step', () => {
  const base = smallBase();
  const global = initAdapters(base, { rank: 2, alpha: 4, seed: 1 });
  const samples = smallSamples(base, 6, 4);
  const batches: number[] = [];
  const zero = train({
    base,
    adapters: global,
    samples,
    epochs: 1,
    batchSize: 4,
    lr: 0.1,
    seed: 1,
    optimizer: 'sgd',
    privatizeGradients: (per) => {
      batches.push(per.length);
      return new Map([...per[0]!].map(([n, g]) => [n, new Float32Array(g.length)]));
    },
  });
  assert.deepEqual(batches, [4, 2]);
  assert.equal(adapterNorm(adapterDelta(zero.adapters, global)), 0);
  assert.throws(
    () => train({ base, adapters: global, samples, epochs: 1, batchSize: 4, lr: 0.1, seed: 1, privatizeGradients: () => new Map() }),
    /privatizeGradients returned no gradient/,
  );
  base.dispose();
});

test('a personal adapter on top of the shared one improves local accuracy; both figures are reported', () => {
  const base = smallBase();
  const shared = initAdapters(base, { rank: 2, alpha: 4, seed: 1 });
  const samples = smallSamples(base, 36, 9, ['image', 'sensor']);
  const { personal, stats } = trainPersonal({ base, shared, samples, epochs: 4, batchSize: 6, lr: 1e-2, seed: 2, lambda: 0.01 });
  assert.ok(stats.epochLoss.at(-1)! < stats.epochLoss[0]!);
  assert.ok(![...personal.tensors.keys()].some((n) => n.startsWith('text.')));
  const report = evaluatePersonalized(base, shared, personal, samples);
  assert.ok(report.personalized.accuracy > report.shared.accuracy, `${report.shared.accuracy} -> ${report.personalized.accuracy}`);
  const headOnly = trainPersonal({ base, shared, samples, epochs: 1, batchSize: 6, lr: 1e-2, seed: 2, modules: ['head'] });
  assert.deepEqual([...headOnly.personal.tensors.keys()], ['head.lora_A', 'head.lora_B']);
  base.dispose();
});

test('pretraining trains every base weight with wasm kernels only and learns the task', () => {
  const base = smallBase();
  const samples = smallSamples(base, 36, 12, undefined, 0.3);
  const { base: trained, stats } = pretrain({ config: base.config, samples, epochs: 3, batchSize: 12, lr: 1e-2, seed: 1 });
  assert.ok(stats.epochLoss[2]! < stats.epochLoss[0]!);
  assert.ok(evaluate(trained, undefined, samples).accuracy > evaluate(base, undefined, samples).accuracy);
  assert.notDeepEqual(trained.weight('text.embed').dataSync(), base.weight('text.embed').dataSync());
  assert.equal(trained.config.numClasses, SMALL.numClasses);
  trained.dispose();
  base.dispose();
});

test('training, personalisation, the DP path, evaluation and merging release every tensor they create', () => {
  const base = smallBase();
  const adapters = initAdapters(base, { rank: 2, alpha: 4, seed: 1 });
  const samples = smallSamples(base, 10, 5, undefined, 0.3);
  const before = tf.memory().numTensors;
  const r = train({ base, adapters, samples, epochs: 1, batchSize: 4, lr: 1e-3, seed: 1, proxMu: 0.1, clipNorm: 1 });
  trainPersonal({ base, shared: r.adapters, samples, epochs: 1, batchSize: 4, lr: 1e-3, seed: 1 });
  train({ base, adapters, samples, epochs: 1, batchSize: 4, lr: 1e-3, seed: 1, proxMu: 0.1, privatizeGradients: (per) => per[0]! });
  evaluate(base, r.adapters, samples);
  mergeAdapters(base, r.adapters).dispose();
  assert.equal(tf.memory().numTensors, before);
  base.dispose();
});
