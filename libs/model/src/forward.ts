import * as tf from '@tensorflow/tfjs';
import { denseModules, imageGeometry, sensorGeometry, type DenseModule, type ModelConfig, type MultimodalConfig } from './config.js';
import type { Batch, ModalityRows } from './batch.js';

/** One adapter set as tensors, with its scale alpha / r. */
export interface AdapterTensors {
  readonly scale: number;
  readonly tensors: ReadonlyMap<string, tf.Tensor>;
}

/** What the forward pass reads: base weights by name and a stack of adapters summed in order. */
export interface ForwardParams {
  weight(name: string): tf.Tensor;
  readonly adapters: readonly AdapterTensors[];
}

const moduleCache = new WeakMap<ModelConfig, Map<string, DenseModule>>();

function modulesOf(config: ModelConfig): Map<string, DenseModule> {
  let m = moduleCache.get(config);
  if (!m) {
    m = new Map(denseModules(config).map((d) => [d.name, d]));
    moduleCache.set(config, m);
  }
  return m;
}

function activate(y: tf.Tensor2D, activation: DenseModule['activation']): tf.Tensor2D {
  switch (activation) {
    case 'relu':
      return tf.relu(y);
    case 'tanh':
      return tf.tanh(y);
    case 'sigmoid':
      return tf.sigmoid(y);
    default:
      return y;
  }
}

/** A dense projection with every adapter of the stack applied: x W + b + sum_k s_k (x A_k^T) B_k^T. */
function dense(config: ModelConfig, p: ForwardParams, name: string, x: tf.Tensor2D): tf.Tensor2D {
  const m = modulesOf(config).get(name)!;
  let y: tf.Tensor2D = tf.matMul<tf.Tensor2D>(x, p.weight(`${name}.weight`));
  if (m.useBias) y = tf.add<tf.Tensor2D>(y, p.weight(`${name}.bias`));
  for (const ad of p.adapters) {
    const a = ad.tensors.get(`${name}.lora_A`);
    const b = ad.tensors.get(`${name}.lora_B`);
    if (!a || !b) continue;
    // Scaling the rank-r intermediate is cheaper than scaling the [n, out] result.
    const low = tf.mul(tf.matMul(x, a as tf.Tensor2D, false, true), ad.scale);
    y = tf.add<tf.Tensor2D>(y, tf.matMul(low, b, false, true));
  }
  return activate(y, m.activation);
}

/**
 * Layer normalisation written from moments and elementwise kernels, with a gain and no bias. On
 * wasm it trains at about the cost of a dense layer of the same width, where
 * tf.layers.layerNormalization is about three times slower (bench/model/train-bench.mjs).
 */
function layerNorm(x: tf.Tensor2D, gain: tf.Tensor): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.mul<tf.Tensor2D>(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), gain);
}

/** A pre-norm transformer block (single-head self-attention, then an MLP) over n sequences of t tokens. */
function encoderBlock(config: MultimodalConfig, p: ForwardParams, prefix: string, x: tf.Tensor2D, n: number, t: number): tf.Tensor2D {
  const d = config.dModel;
  const h = layerNorm(x, p.weight(`${prefix}.norm1.gain`));
  const q = tf.reshape(dense(config, p, `${prefix}.attn.q`, h), [n, t, d]);
  const k = tf.reshape(dense(config, p, `${prefix}.attn.k`, h), [n, t, d]);
  const v = tf.reshape(dense(config, p, `${prefix}.attn.v`, h), [n, t, d]);
  const scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d));
  const attended = tf.reshape<tf.Rank.R2>(tf.matMul(tf.softmax(scores), v), [n * t, d]);
  const x1 = tf.add<tf.Tensor2D>(x, dense(config, p, `${prefix}.attn.o`, attended));
  const h2 = layerNorm(x1, p.weight(`${prefix}.norm2.gain`));
  const mlp = dense(config, p, `${prefix}.mlp.fc2`, dense(config, p, `${prefix}.mlp.fc1`, h2));
  return tf.add<tf.Tensor2D>(x1, mlp);
}

/** Tokens (patches or windows) -> embedding -> positions -> block -> mean pool -> projection. */
function sequenceEncoder(
  config: MultimodalConfig,
  p: ForwardParams,
  prefix: 'image' | 'sensor',
  embed: string,
  rows: ModalityRows,
  tokens: number,
  width: number,
): tf.Tensor2D {
  const n = rows.rows.length;
  const d = config.dModel;
  const x = tf.tensor2d(rows.data, [n * tokens, width]);
  const e = tf.reshape(dense(config, p, `${prefix}.${embed}`, x), [n, tokens, d]);
  const withPos = tf.reshape<tf.Rank.R2>(tf.add(e, p.weight(`${prefix}.pos_embed`)), [n * tokens, d]);
  const encoded = encoderBlock(config, p, prefix, withPos, n, tokens);
  const pooled = tf.mean<tf.Tensor2D>(tf.reshape(encoded, [n, tokens, d]), 1);
  return dense(config, p, `${prefix}.proj`, pooled);
}

/** Bag of words -> frozen-table lookup as a matmul (its gradient is a matmul too) -> residual MLP -> projection. */
function textEncoder(config: MultimodalConfig, p: ForwardParams, rows: ModalityRows): tf.Tensor2D {
  const bag = tf.tensor2d(rows.data, [rows.rows.length, config.vocabSize]);
  const pooled: tf.Tensor2D = tf.matMul<tf.Tensor2D>(bag, p.weight('text.embed'));
  const h = layerNorm(pooled, p.weight('text.norm.gain'));
  const x = tf.add<tf.Tensor2D>(pooled, dense(config, p, 'text.mlp.fc2', dense(config, p, 'text.mlp.fc1', h)));
  return dense(config, p, 'text.proj', x);
}

/** Places k modality rows into the n batch rows (one-hot matmul, whose gradient wasm has). */
function scatterRows(e: tf.Tensor2D, rows: Int32Array, n: number): tf.Tensor2D {
  if (rows.length === n) return e;
  const sel = new Float32Array(n * rows.length);
  rows.forEach((r, k) => {
    sel[r * rows.length + k] = 1;
  });
  return tf.matMul(tf.tensor2d(sel, [n, rows.length]), e);
}

function multimodalForward(config: MultimodalConfig, p: ForwardParams, batch: Batch): tf.Tensor2D {
  const n = batch.size;
  const count = new Float32Array(n);
  const embeddings: tf.Tensor2D[] = [];
  const add = (rows: ModalityRows | undefined, encode: (r: ModalityRows) => tf.Tensor2D): void => {
    if (!rows) return;
    for (const r of rows.rows) count[r]! += 1;
    embeddings.push(scatterRows(encode(rows), rows.rows, n));
  };
  const img = imageGeometry(config);
  const sen = sensorGeometry(config);
  add(batch.image, (r) => sequenceEncoder(config, p, 'image', 'patch_embed', r, img.tokens, img.width));
  add(batch.text, (r) => textEncoder(config, p, r));
  add(batch.sensor, (r) => sequenceEncoder(config, p, 'sensor', 'window_embed', r, sen.tokens, sen.width));
  // Masked mean: each sample averages only the modalities it has.
  const inv = tf.tensor2d(Float32Array.from(count, (c) => (c > 0 ? 1 / c : 0)), [n, 1]);
  const fused = tf.mul<tf.Tensor2D>(embeddings.length === 1 ? embeddings[0]! : tf.addN(embeddings), inv);
  const h = tf.add<tf.Tensor2D>(fused, dense(config, p, 'fusion.dense', layerNorm(fused, p.weight('fusion.norm.gain'))));
  return dense(config, p, 'head', h);
}

/** Class logits [batch, numClasses] for a batch; call inside tf.tidy. */
export function forward(config: ModelConfig, p: ForwardParams, batch: Batch): tf.Tensor2D {
  if (config.kind === 'multimodal') return multimodalForward(config, p, batch);
  const rows = batch[config.modality]!;
  const width = rows.data.length / rows.rows.length;
  let x = tf.tensor2d(rows.data, [rows.rows.length, width]);
  for (const layer of config.layers) x = dense(config, p, layer.name, x);
  return x;
}

/** Mean softmax cross-entropy of logits against integer labels. */
export function crossEntropy(logits: tf.Tensor2D, labels: Int32Array): tf.Scalar {
  const n = labels.length;
  const c = logits.shape[1];
  const oneHot = new Float32Array(n * c);
  labels.forEach((l, i) => {
    oneHot[i * c + l] = 1;
  });
  const logProbs = tf.sub(logits, tf.logSumExp(logits, 1, true));
  return tf.neg(tf.div(tf.sum(tf.mul(logProbs, tf.tensor2d(oneHot, [n, c]))), n));
}
