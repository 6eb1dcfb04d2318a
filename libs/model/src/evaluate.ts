import * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '@fedmm/core';
import { adapterScale, validateAdapters, type AdapterSet } from './adapters.js';
import type { BaseModel } from './base.js';
import { assembleBatch, prepareSamples } from './batch.js';
import { forward, type AdapterTensors } from './forward.js';
import type { Sample } from './types.js';

/** Class probabilities of each sample: row i holds numClasses values. */
export interface Probabilities {
  readonly numClasses: number;
  /** Row-major [samples, numClasses]. */
  readonly values: Float32Array;
}

/** Accuracy of one class. */
export interface ClassAccuracy {
  readonly label: number;
  readonly support: number;
  readonly correct: number;
  /** correct / support; NaN when the class has no sample. */
  readonly accuracy: number;
}

/** Evaluation figures of a model on labelled samples. */
export interface EvalResult {
  readonly samples: number;
  readonly accuracy: number;
  /** Mean cross-entropy. */
  readonly loss: number;
  readonly perClass: readonly ClassAccuracy[];
  readonly predictions: Int32Array;
  readonly probabilities: Probabilities;
}

/** Adapters applied on top of the base, summed in order (e.g. [shared, personal]); none evaluates the base. */
export type AdapterStack = AdapterSet | readonly AdapterSet[] | undefined;

function stackOf(base: BaseModel, adapters: AdapterStack): AdapterSet[] {
  const sets = adapters === undefined ? [] : Array.isArray(adapters) ? [...(adapters as readonly AdapterSet[])] : [adapters as AdapterSet];
  for (const s of sets) validateAdapters(base, s);
  return sets;
}

/** Softmax probabilities of the (adapted) model for each sample, in sample order. */
export function predictProba(base: BaseModel, adapters: AdapterStack, samples: readonly Sample[], batchSize = 128): Probabilities {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw invalidArgument(`predictProba: batchSize must be a positive integer, got ${batchSize}`);
  const prepared = prepareSamples(base.config, samples);
  const c = base.config.numClasses;
  const values = new Float32Array(samples.length * c);
  const sets = stackOf(base, adapters);
  const stack: AdapterTensors[] = sets.map((s) => ({
    scale: adapterScale(s),
    tensors: new Map([...s.tensors].map(([n, t]) => [n, tf.tensor(t.data, [...t.shape], 'float32')])),
  }));
  try {
    for (let start = 0; start < samples.length; start += batchSize) {
      const idx = Int32Array.from({ length: Math.min(batchSize, samples.length - start) }, (_, i) => start + i);
      const batch = assembleBatch(base.config, prepared, idx);
      const probs = tf.tidy(() => tf.softmax(forward(base.config, { weight: (n) => base.weight(n), adapters: stack }, batch)));
      values.set(probs.dataSync(), start * c);
      probs.dispose();
    }
  } finally {
    for (const s of stack) tf.dispose([...s.tensors.values()]);
  }
  return { numClasses: c, values };
}

/** Accuracy, per-class accuracy, loss and probabilities of the (adapted) model on labelled samples. */
export function evaluate(base: BaseModel, adapters: AdapterStack, samples: readonly Sample[], batchSize = 128): EvalResult {
  if (samples.length === 0) throw invalidArgument('evaluate: no samples to evaluate');
  const probabilities = predictProba(base, adapters, samples, batchSize);
  const c = probabilities.numClasses;
  const predictions = new Int32Array(samples.length);
  const support = new Array<number>(c).fill(0);
  const correct = new Array<number>(c).fill(0);
  let loss = 0;
  samples.forEach((s, i) => {
    let best = 0;
    for (let k = 1; k < c; k++) if (probabilities.values[i * c + k]! > probabilities.values[i * c + best]!) best = k;
    predictions[i] = best;
    support[s.label]! += 1;
    if (best === s.label) correct[s.label]! += 1;
    loss -= Math.log(Math.max(probabilities.values[i * c + s.label]!, 1e-12));
  });
  const total = correct.reduce((a, b) => a + b, 0);
  return {
    samples: samples.length,
    accuracy: total / samples.length,
    loss: loss / samples.length,
    perClass: support.map((n, label) => ({ label, support: n, correct: correct[label]!, accuracy: n > 0 ? correct[label]! / n : Number.NaN })),
    predictions,
    probabilities,
  };
}

/** The shared model's and the personalised model's figures on the same samples, for the company report. */
export function evaluatePersonalized(
  base: BaseModel,
  shared: AdapterSet,
  personal: AdapterSet,
  samples: readonly Sample[],
  batchSize = 128,
): { shared: EvalResult; personalized: EvalResult } {
  return {
    shared: evaluate(base, shared, samples, batchSize),
    personalized: evaluate(base, [shared, personal], samples, batchSize),
  };
}
