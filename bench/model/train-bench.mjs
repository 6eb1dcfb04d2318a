// Model training benchmark: adapter-training samples/s of the reference multimodal model on the
// wasm backend (and cpu for comparison), against a dense-only baseline measured in the same run.
// Usage: npx tsc -b libs/model && node bench/model/train-bench.mjs
// Env: BENCH_N (samples, default 256), BENCH_EPOCHS (default 2), BENCH_BATCH (default 32),
//      BENCH_BACKENDS (default "wasm,cpu").
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import {
  IMAGE_SIZE,
  SENSOR_CHANNELS,
  SENSOR_STEPS,
  createBaseModel,
  evaluate,
  importLayersModel,
  initAdapters,
  initBackend,
  mulberry32,
  pretrain,
  train,
} from '@fedmm/model';

const N = Number(process.env.BENCH_N ?? 256);
const EPOCHS = Number(process.env.BENCH_EPOCHS ?? 2);
const BATCH = Number(process.env.BENCH_BATCH ?? 32);
const BACKENDS = (process.env.BENCH_BACKENDS ?? 'wasm,cpu').split(',');
const CLASSES = 4;

/** Random inputs: throughput does not depend on what the pixels say. */
function samples(n, modalities, tokenizer, seed) {
  const rng = mulberry32(seed);
  return Array.from({ length: n }, (_, i) => ({
    label: i % CLASSES,
    ...(modalities.includes('image') ? { image: Float32Array.from({ length: IMAGE_SIZE * IMAGE_SIZE * 3 }, () => rng.next()) } : {}),
    ...(modalities.includes('text') ? { tokens: tokenizer.encode(`word${i % 50} reading ${rng.int(100)} unit ${i % 7}`, 32) } : {}),
    ...(modalities.includes('sensor') ? { sensor: Float32Array.from({ length: SENSOR_CHANNELS * SENSOR_STEPS }, () => rng.normal()) } : {}),
  }));
}

function row(label, sps, baseline) {
  console.log(`  ${label.padEnd(44)} ${sps.toFixed(0).padStart(7)} samples/s   x${(sps / baseline).toFixed(2)} of baseline`);
}

/** Forward+backward time of a [512, 64] normalisation vs a dense layer of the same size. */
function normMicrobench() {
  const x = tf.randomNormal([512, 64]);
  const w = tf.randomNormal([64, 64]);
  const g = tf.ones([64]);
  const time = (f) => {
    for (let i = 0; i < 5; i++) tf.tidy(() => tf.grads(f)([x])[0].dataSync());
    const t = performance.now();
    for (let i = 0; i < 50; i++) tf.tidy(() => tf.grads(f)([x])[0].dataSync());
    return (performance.now() - t) / 50;
  };
  const dense = time((a) => tf.sum(tf.relu(tf.matMul(a, w))));
  const rms = time((a) => tf.sum(tf.mul(tf.mul(a, tf.rsqrt(tf.add(tf.mean(tf.square(a), -1, true), 1e-6))), g)));
  const layer = time((a) => {
    const { mean, variance } = tf.moments(a, -1, true);
    return tf.sum(tf.mul(tf.mul(tf.sub(a, mean), tf.rsqrt(tf.add(variance, 1e-5))), g));
  });
  const ln = tf.layers.layerNormalization({ axis: -1 });
  ln.build([512, 64]);
  const layersLn = time((a) => tf.sum(ln.apply(a)));
  tf.dispose([x, w, g]);
  const ms = (v) => `${v.toFixed(2)} ms (x${(v / dense).toFixed(2)})`;
  console.log(`  fwd+bwd on [512,64]: dense+relu ${dense.toFixed(2)} ms; functional layerNorm (used) ${ms(layer)}, rmsNorm ${ms(rms)}, tf.layers.layerNormalization ${ms(layersLn)}`);
}

async function runBackend(name) {
  const info = await initBackend(name);
  console.log(`\nbackend ${info.backend} (simd ${info.simd}, threads ${info.threads}); load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const base = createBaseModel({ numClasses: CLASSES }, 1);
  const opts = { epochs: EPOCHS, batchSize: BATCH, lr: 1e-3, seed: 1 };
  const all = samples(N, ['image', 'text', 'sensor'], base.tokenizer, 2);

  // Baseline: a plain 192-64-64-4 dense classifier on the sensor input, trained fully, same loop.
  const mlp = tf.sequential();
  mlp.add(tf.layers.dense({ inputShape: [SENSOR_CHANNELS * SENSOR_STEPS], units: 64, activation: 'relu', name: 'fc1' }));
  mlp.add(tf.layers.dense({ units: 64, activation: 'relu', name: 'fc2' }));
  mlp.add(tf.layers.dense({ units: CLASSES, name: 'out' }));
  const mlpBase = importLayersModel(mlp, { modality: 'sensor' });
  const sensorOnly = samples(N, ['sensor'], base.tokenizer, 3);
  train({ base: mlpBase, adapters: initAdapters(mlpBase, { rank: 8, alpha: 16, seed: 1 }), samples: sensorOnly.slice(0, BATCH), ...opts, epochs: 1 });
  const baseline = train({ base: mlpBase, adapters: initAdapters(mlpBase, { rank: 8, alpha: 16, seed: 1 }), samples: sensorOnly, ...opts }).stats.samplesPerSec;
  row('baseline: LoRA on a 192-64-64-4 dense MLP', baseline, baseline);

  const adapters = initAdapters(base, { rank: 8, alpha: 16, seed: 1 });
  train({ base, adapters, samples: all.slice(0, BATCH), ...opts, epochs: 1 }); // warm-up
  const results = {};
  for (const mods of [['image'], ['text'], ['sensor'], ['image', 'text', 'sensor']]) {
    const data = mods.length === 3 ? all : samples(N, mods, base.tokenizer, 4);
    const r = train({ base, adapters, samples: data, ...opts });
    results[mods.join('+')] = r.stats.samplesPerSec;
    row(`LoRA r=8 training, ${mods.join('+')}`, r.stats.samplesPerSec, baseline);
  }
  const mixed = samples(N, ['image', 'text', 'sensor'], base.tokenizer, 5).map((s, i) =>
    i % 3 === 0 ? { label: s.label, tokens: s.tokens } : i % 3 === 1 ? { label: s.label, image: s.image, sensor: s.sensor } : s,
  );
  row('LoRA r=8 training, per-sample missing modalities', train({ base, adapters, samples: mixed, ...opts }).stats.samplesPerSec, baseline);
  row('LoRA r=8 + FedProx mu=0.01', train({ base, adapters, samples: all, ...opts, proxMu: 0.01 }).stats.samplesPerSec, baseline);
  const few = all.slice(0, Math.max(BATCH, Math.floor(N / 4)));
  const dp = train({
    base,
    adapters,
    samples: few,
    ...opts,
    epochs: 1,
    privatizeGradients: (per) => {
      const out = new Map();
      for (const [name, g] of per[0]) out.set(name, new Float32Array(g.length));
      for (const m of per) for (const [name, g] of m) { const o = out.get(name); for (let i = 0; i < g.length; i++) o[i] += g[i] / per.length; }
      return out;
    },
  });
  row('LoRA r=8, per-example gradients (DP-SGD hook)', dp.stats.samplesPerSec, baseline);
  const p = pretrain({ config: base.config, samples: all, ...opts, epochs: 1 });
  row('pretraining, every base weight trained', p.stats.samplesPerSec, baseline);
  const t = performance.now();
  evaluate(base, adapters, all);
  row('evaluation (forward only), all modalities', N / ((performance.now() - t) / 1000), baseline);
  normMicrobench();
  const demoSteps = 3 * 300 * 2 * 5;
  console.log(`  demo estimate (3 companies x 300 samples x 2 epochs x 5 rounds, all modalities): ${(demoSteps / results['image+text+sensor']).toFixed(0)} s of training`);
  p.base.dispose();
  mlpBase.dispose();
  mlp.dispose();
  base.dispose();
}

console.log(`model training benchmark: ${N} samples, ${EPOCHS} epochs, batch ${BATCH}, dModel 64, LoRA rank 8`);
for (const b of BACKENDS) await runBackend(b);
