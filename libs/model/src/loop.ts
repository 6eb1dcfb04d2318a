import * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '@fedmm/core';
import type { ModelConfig } from './config.js';
import { assembleBatch, type Batch, type PreparedSample } from './batch.js';
import { crossEntropy, forward, type ForwardParams } from './forward.js';
import { deriveSeed, mulberry32, permutation } from './rng.js';
import type { ModuleGroup } from './types.js';

/** Progress of a training run, reported after every step. */
export interface TrainProgress {
  /** 1-based epoch. */
  readonly epoch: number;
  readonly epochs: number;
  /** 1-based step within the epoch. */
  readonly step: number;
  readonly stepsPerEpoch: number;
  /** Mean cross-entropy over the epoch's steps so far. */
  readonly loss: number;
  /** Training samples per second since the run started. */
  readonly samplesPerSec: number;
}

/**
 * Turns per-example gradients (one map per example of the batch, gradient of that example's loss,
 * keyed by trainable tensor name) into the gradient to apply: the hook clips each example and
 * adds noise for record-level DP-SGD, and divides by the batch size itself.
 */
export type PrivatizeGradients = (perExampleGrads: Map<string, Float32Array>[]) => Map<string, Float32Array>;

/** Figures of a finished training run. */
export interface TrainStats {
  readonly epochs: number;
  readonly steps: number;
  readonly samples: number;
  readonly seconds: number;
  readonly samplesPerSec: number;
  /** Mean cross-entropy of each epoch, in order. */
  readonly epochLoss: readonly number[];
}

/** Hyper-parameters shared by every training entry point. */
export interface LoopOptions {
  readonly epochs: number;
  readonly batchSize: number;
  readonly lr: number;
  readonly seed: number;
  /** 'adam' (default) or plain 'sgd'. */
  readonly optimizer?: 'adam' | 'sgd';
  readonly privatizeGradients?: PrivatizeGradients;
  readonly onProgress?: (p: TrainProgress) => void;
}

export interface LoopSpec extends LoopOptions {
  readonly config: ModelConfig;
  readonly prepared: readonly PreparedSample[];
  /** Initial values of the trained tensors; the loop takes ownership and disposes them. */
  readonly trainable: Map<string, tf.Tensor>;
  readonly params: (trainable: ReadonlyMap<string, tf.Tensor>) => ForwardParams;
  /** The group of each trainable tensor: a batch without a modality leaves that modality's tensors out of the gradient. */
  readonly groups: ReadonlyMap<string, ModuleGroup>;
  /** A data-independent regulariser added to the loss (FedProx, Ditto). */
  readonly penalty?: (trainable: ReadonlyMap<string, tf.Tensor>) => tf.Scalar;
}

export function checkLoopOptions(o: LoopOptions, samples: number): void {
  if (!Number.isInteger(o.epochs) || o.epochs < 1) throw invalidArgument(`train: epochs must be a positive integer, got ${o.epochs}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) {
    throw invalidArgument(`train: batchSize must be a positive integer, got ${o.batchSize}`);
  }
  if (!(Number.isFinite(o.lr) && o.lr > 0)) throw invalidArgument(`train: lr must be a positive number, got ${o.lr}`);
  if (!Number.isInteger(o.seed)) throw invalidArgument(`train: seed must be an integer, got ${o.seed}`);
  if (samples === 0) throw invalidArgument('train: no samples to train on');
}

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPS = 1e-8;

/** Runs mini-batch training of the trainable tensors and returns their final values as float32 arrays. */
export function runLoop(spec: LoopSpec): { values: Map<string, Float32Array>; stats: TrainStats } {
  checkLoopOptions(spec, spec.prepared.length);
  const names = [...spec.trainable.keys()];
  if (names.length === 0) throw invalidArgument('train: nothing to train (the adapter set is empty for the modalities of these samples)');
  let values = names.map((n) => spec.trainable.get(n)!);
  const adam = (spec.optimizer ?? 'adam') === 'adam';
  let m = adam ? values.map((v) => tf.zerosLike(v)) : [];
  let v = adam ? values.map((x) => tf.zerosLike(x)) : [];
  const n = spec.prepared.length;
  const stepsPerEpoch = Math.ceil(n / spec.batchSize);
  const epochLoss: number[] = [];
  const started = performance.now();
  let seen = 0;
  let t = 0;
  const asMap = (ts: readonly tf.Tensor[]): Map<string, tf.Tensor> => new Map(names.map((name, i) => [name, ts[i]!]));

  // tfjs refuses gradients for inputs that do not reach the loss, and a batch without images does
  // not reach the image modules: those get a zero gradient instead.
  const activeIndices = (batch: Batch): number[] =>
    names.flatMap((name, k) => {
      const g = spec.groups.get(name) ?? 'shared';
      return g === 'shared' || batch[g] !== undefined ? [k] : [];
    });

  const lossAndGrads = (batch: Batch, withPenalty: boolean): { loss: number; grads: tf.Tensor[] } => {
    let ce = 0;
    const active = activeIndices(batch);
    const f = (...args: tf.Tensor[]): tf.Scalar => {
      const all = [...values];
      active.forEach((k, j) => {
        all[k] = args[j]!;
      });
      const current = asMap(all);
      const dataLoss = crossEntropy(forward(spec.config, spec.params(current), batch), batch.labels);
      ce = dataLoss.dataSync()[0]!;
      return withPenalty && spec.penalty ? tf.add(dataLoss, spec.penalty(current)) : dataLoss;
    };
    const grads = tf.tidy(() => {
      const r = tf.valueAndGrads(f)(active.map((k) => values[k]!));
      const full = values.map((w) => tf.zerosLike(w));
      active.forEach((k, j) => {
        full[k] = r.grads[j]!;
      });
      return full;
    });
    return { loss: ce, grads };
  };

  const privateGrads = (indices: Int32Array): { loss: number; grads: tf.Tensor[] } => {
    const perExample: Map<string, Float32Array>[] = [];
    let lossSum = 0;
    for (const i of indices) {
      const { loss, grads } = lossAndGrads(assembleBatch(spec.config, spec.prepared, [i]), false);
      lossSum += loss;
      perExample.push(new Map(names.map((name, k) => [name, grads[k]!.dataSync() as Float32Array])));
      tf.dispose(grads);
    }
    const combined = spec.privatizeGradients!(perExample);
    const grads = names.map((name, k) => {
      const g = combined.get(name);
      if (!g || g.length !== values[k]!.size) {
        throw invalidArgument(`train: privatizeGradients returned no gradient of ${values[k]!.size} values for ${name}`);
      }
      return tf.tensor(g, values[k]!.shape);
    });
    if (spec.penalty) {
      const penaltyGrads = tf.tidy(() => tf.grads((...args: tf.Tensor[]) => spec.penalty!(asMap(args)))(values));
      for (let k = 0; k < grads.length; k++) {
        const sum = tf.add(grads[k]!, penaltyGrads[k]!);
        grads[k]!.dispose();
        grads[k] = sum;
      }
      tf.dispose(penaltyGrads);
    }
    return { loss: lossSum / indices.length, grads };
  };

  for (let epoch = 1; epoch <= spec.epochs; epoch++) {
    const order = permutation(n, mulberry32(deriveSeed(spec.seed, `epoch:${epoch}`)));
    let sum = 0;
    for (let step = 1; step <= stepsPerEpoch; step++) {
      const indices = order.subarray((step - 1) * spec.batchSize, Math.min(n, step * spec.batchSize));
      const { loss, grads } = spec.privatizeGradients
        ? privateGrads(indices)
        : lossAndGrads(assembleBatch(spec.config, spec.prepared, indices), true);
      t++;
      const next = tf.tidy(() => {
        if (!adam) return { w: values.map((w, k) => tf.sub(w, tf.mul(grads[k]!, spec.lr))), m: [], v: [] };
        const c1 = 1 - BETA1 ** t;
        const c2 = 1 - BETA2 ** t;
        const m2 = m.map((mk, k) => tf.add(tf.mul(mk, BETA1), tf.mul(grads[k]!, 1 - BETA1)));
        const v2 = v.map((vk, k) => tf.add(tf.mul(vk, BETA2), tf.mul(tf.square(grads[k]!), 1 - BETA2)));
        const w2 = values.map((w, k) =>
          tf.sub(w, tf.mul(tf.div(tf.div(m2[k]!, c1), tf.add(tf.sqrt(tf.div(v2[k]!, c2)), EPS)), spec.lr)),
        );
        return { w: w2, m: m2, v: v2 };
      });
      tf.dispose([...grads, ...values, ...m, ...v]);
      values = next.w;
      m = next.m;
      v = next.v;
      seen += indices.length;
      sum += loss;
      spec.onProgress?.({
        epoch,
        epochs: spec.epochs,
        step,
        stepsPerEpoch,
        loss: sum / step,
        samplesPerSec: seen / ((performance.now() - started) / 1000),
      });
    }
    epochLoss.push(sum / stepsPerEpoch);
  }
  const seconds = (performance.now() - started) / 1000;
  const out = new Map(names.map((name, k) => [name, new Float32Array(values[k]!.dataSync())]));
  tf.dispose([...values, ...m, ...v]);
  return {
    values: out,
    stats: { epochs: spec.epochs, steps: t, samples: seen, seconds, samplesPerSec: seen / seconds, epochLoss },
  };
}
