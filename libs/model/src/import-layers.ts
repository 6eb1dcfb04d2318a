import type * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '@fedmm/core';
import { BaseModel, fromTensorMap } from './base.js';
import { sequentialInputDim, type Activation, type SequentialConfig, type SequentialLayer } from './config.js';
import { Tokenizer } from './tokenizer.js';
import type { Modality, TensorMap } from './types.js';

/** Options of `importLayersModel`. */
export interface ImportOptions {
  /** The modality the model reads, flattened: image 32*32*3, sensor 3*64, or text as a bag of words of vocabSize ids. */
  readonly modality: Modality;
  /** For text models: the tokenizer whose ids the model reads (default a hashing tokenizer of the input width). */
  readonly tokenizer?: Tokenizer;
}

const PASS_THROUGH = new Set(['InputLayer', 'Flatten', 'Dropout']);
const ACTIVATIONS = new Set<string>(['linear', 'relu', 'tanh', 'sigmoid']);

function activationName(value: unknown): string {
  if (value === undefined || value === null) return 'linear';
  if (typeof value === 'string') return value;
  const name = (value as { getClassName?: () => string }).getClassName?.();
  return typeof name === 'string' ? name.toLowerCase() : String(value);
}

/**
 * Wraps a tfjs LayersModel made of Dense layers (with InputLayer, Flatten, Dropout and Activation
 * between them) as a frozen single-modality base whose Dense kernels carry LoRA adapters.
 * A final softmax is dropped: the base returns logits. Convolutions, recurrences, normalisation
 * and branching graphs are not supported.
 */
export function importLayersModel(model: tf.LayersModel, options: ImportOptions): BaseModel {
  const layers: SequentialLayer[] = [];
  const weights: TensorMap = new Map();
  let pendingSoftmax = false;
  for (const layer of model.layers) {
    const kind = layer.getClassName();
    if (PASS_THROUGH.has(kind)) continue;
    if (pendingSoftmax) {
      throw invalidArgument(`importLayersModel: softmax is only allowed on the last layer, but ${layer.name} follows it`);
    }
    const config = layer.getConfig() as { activation?: unknown; units?: number; useBias?: boolean };
    const act = activationName(config.activation);
    if (kind === 'Activation') {
      const last = layers[layers.length - 1];
      if (!last || last.activation !== 'linear') {
        throw invalidArgument(`importLayersModel: Activation layer ${layer.name} must follow a linear Dense layer`);
      }
      if (act === 'softmax') pendingSoftmax = true;
      else if (ACTIVATIONS.has(act)) layers[layers.length - 1] = { ...last, activation: act as Activation };
      else throw invalidArgument(`importLayersModel: activation ${act} of ${layer.name} is not supported (linear, relu, tanh, sigmoid, softmax)`);
      continue;
    }
    if (kind !== 'Dense') {
      throw invalidArgument(
        `importLayersModel: layer ${layer.name} is a ${kind}; only Dense, Activation, Dropout, Flatten and InputLayer can be imported`,
      );
    }
    const [kernel, bias] = layer.getWeights();
    if (!kernel || kernel.shape.length !== 2) throw invalidArgument(`importLayersModel: Dense layer ${layer.name} has no 2-D kernel; build the model first`);
    const [inDim, outDim] = kernel.shape as [number, number];
    const useBias = bias !== undefined;
    if (act === 'softmax') pendingSoftmax = true;
    else if (!ACTIVATIONS.has(act)) throw invalidArgument(`importLayersModel: activation ${act} of ${layer.name} is not supported`);
    const name = layer.name;
    if (weights.has(`${name}.weight`)) throw invalidArgument(`importLayersModel: duplicate layer name ${name}`);
    layers.push({ name, inDim, outDim, activation: act === 'softmax' ? 'linear' : (act as Activation), useBias });
    weights.set(`${name}.weight`, { shape: [inDim, outDim], data: new Float32Array(kernel.dataSync()) });
    if (bias) weights.set(`${name}.bias`, { shape: [outDim], data: new Float32Array(bias.dataSync()) });
  }
  const first = layers[0];
  const last = layers[layers.length - 1];
  if (!first || !last) throw invalidArgument('importLayersModel: the model has no Dense layer');
  for (let i = 1; i < layers.length; i++) {
    if (layers[i]!.inDim !== layers[i - 1]!.outDim) throw invalidArgument(`importLayersModel: ${layers[i]!.name} does not chain onto ${layers[i - 1]!.name}`);
  }
  const vocabSize = options.modality === 'text' ? first.inDim : (options.tokenizer?.vocabSize ?? 16);
  const expected = sequentialInputDim(options.modality, vocabSize);
  if (first.inDim !== expected) {
    throw invalidArgument(
      `importLayersModel: first Dense layer ${first.name} reads ${first.inDim} values, but ${options.modality} input has ${expected}`,
    );
  }
  if (last.outDim < 2) throw invalidArgument('importLayersModel: the last Dense layer must output at least 2 class logits');
  const tokenizer = options.tokenizer ?? new Tokenizer({ vocabSize: Math.max(16, vocabSize) });
  if (options.modality === 'text' && tokenizer.vocabSize !== vocabSize) {
    throw invalidArgument(`importLayersModel: tokenizer vocabSize ${tokenizer.vocabSize} differs from the model input width ${vocabSize}`);
  }
  const config: SequentialConfig = Object.freeze({
    kind: 'sequential',
    modality: options.modality,
    numClasses: last.outDim,
    vocabSize: tokenizer.vocabSize,
    layers: Object.freeze(layers),
  });
  return fromTensorMap(config, tokenizer, weights);
}
