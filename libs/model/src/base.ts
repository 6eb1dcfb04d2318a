import * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '@fedmm/core';
import { baseWeightSpecs, compileModelConfig, type ModelConfig, type MultimodalConfigInput } from './config.js';
import { mulberry32, deriveSeed } from './rng.js';
import { Tokenizer } from './tokenizer.js';
import type { NamedTensor, TensorMap } from './types.js';

/**
 * A frozen base model: its configuration, tokenizer and weights held as tfjs tensors.
 * Call `dispose()` when done; tensors live on the active backend.
 */
export class BaseModel {
  readonly config: ModelConfig;
  readonly tokenizer: Tokenizer;
  readonly weights: ReadonlyMap<string, tf.Tensor>;

  constructor(config: ModelConfig, tokenizer: Tokenizer, weights: Map<string, tf.Tensor>) {
    this.config = config;
    this.tokenizer = tokenizer;
    this.weights = weights;
    for (const spec of baseWeightSpecs(config)) {
      const w = weights.get(spec.name);
      if (!w) throw invalidArgument(`base model: weight ${spec.name} is missing`, { weight: spec.name });
      if (!sameShape(w.shape, spec.shape)) {
        throw invalidArgument(`base model: weight ${spec.name} has shape [${w.shape}], expected [${spec.shape}]`, {
          weight: spec.name,
        });
      }
    }
    if (config.kind === 'multimodal' && tokenizer.vocabSize !== config.vocabSize) {
      throw invalidArgument(
        `base model: tokenizer vocabSize ${tokenizer.vocabSize} differs from the model's ${config.vocabSize}; build both from one config`,
      );
    }
  }

  /** A base weight by name; throws when the model has no such weight. */
  weight(name: string): tf.Tensor {
    const w = this.weights.get(name);
    if (!w) throw invalidArgument(`base model has no weight ${name}`, { weight: name });
    return w;
  }

  /** Releases the weight tensors. */
  dispose(): void {
    for (const w of this.weights.values()) w.dispose();
  }
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Seeded initial values of every base weight of a configuration, in spec order. */
export function initialWeights(config: ModelConfig, seed: number): TensorMap {
  const out: TensorMap = new Map();
  for (const spec of baseWeightSpecs(config)) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    const rng = mulberry32(deriveSeed(seed, spec.name));
    if (spec.init === 'glorot') {
      const limit = Math.sqrt(6 / (spec.shape[0]! + spec.shape[1]!));
      for (let i = 0; i < size; i++) data[i] = (rng.next() * 2 - 1) * limit;
    } else if (spec.init === 'embedding') {
      for (let i = 0; i < size; i++) data[i] = rng.normal() * 0.1;
    } else if (spec.init === 'ones') {
      data.fill(1);
    }
    out.set(spec.name, { shape: spec.shape, data });
  }
  return out;
}

/** Creates a randomly initialised multimodal base model (deterministic for a seed). */
export function createBaseModel(config: MultimodalConfigInput | ModelConfig, seed: number, tokenizer?: Tokenizer): BaseModel {
  const compiled = 'kind' in config ? config : compileModelConfig(config);
  const vocab = compiled.kind === 'multimodal' ? compiled.vocabSize : Math.max(16, compiled.vocabSize);
  return fromTensorMap(compiled, tokenizer ?? new Tokenizer({ vocabSize: vocab }), initialWeights(compiled, seed));
}

/** Builds a base model from named float32 arrays. */
export function fromTensorMap(config: ModelConfig, tokenizer: Tokenizer, weights: TensorMap): BaseModel {
  const tensors = new Map<string, tf.Tensor>();
  for (const spec of baseWeightSpecs(config)) {
    const w = weights.get(spec.name);
    if (!w) throw invalidArgument(`base model: weight ${spec.name} is missing from the stored tensors`, { weight: spec.name });
    if (!sameShape(w.shape, spec.shape) || w.data.length !== spec.shape.reduce((a, b) => a * b, 1)) {
      throw invalidArgument(`base model: stored ${spec.name} has shape [${w.shape}], expected [${spec.shape}]`);
    }
    tensors.set(spec.name, tf.tensor(w.data, [...spec.shape], 'float32'));
  }
  return new BaseModel(config, tokenizer, tensors);
}

/** Metadata keys under which `saveBase` stores the configuration and tokenizer (safetensors __metadata__). */
export const BASE_METADATA_KEYS = Object.freeze({ config: 'fedmm.model.config', tokenizer: 'fedmm.model.tokenizer' });

/** A base model as named float32 tensors plus string metadata, ready for a safetensors writer. */
export interface StoredBase {
  readonly tensors: TensorMap;
  readonly metadata: Record<string, string>;
}

/** Copies a base model's weights out as named float32 arrays, with its config and tokenizer as metadata. */
export function saveBase(model: BaseModel): StoredBase {
  const tensors: TensorMap = new Map();
  for (const spec of baseWeightSpecs(model.config)) {
    const w = model.weight(spec.name);
    tensors.set(spec.name, { shape: [...w.shape], data: new Float32Array(w.dataSync()) });
  }
  return {
    tensors,
    metadata: {
      [BASE_METADATA_KEYS.config]: JSON.stringify(model.config),
      [BASE_METADATA_KEYS.tokenizer]: model.tokenizer.serialize(),
    },
  };
}

/** Rebuilds a base model from `saveBase` output (tensors and metadata). */
export function loadBase(stored: StoredBase): BaseModel {
  const configText = stored.metadata[BASE_METADATA_KEYS.config];
  const tokText = stored.metadata[BASE_METADATA_KEYS.tokenizer];
  if (configText === undefined || tokText === undefined) {
    throw invalidArgument(
      `base model: metadata must hold ${BASE_METADATA_KEYS.config} and ${BASE_METADATA_KEYS.tokenizer}; store the metadata saveBase returns`,
    );
  }
  let parsed: ModelConfig;
  try {
    parsed = JSON.parse(configText) as ModelConfig;
  } catch (e) {
    throw invalidArgument(`base model: config metadata is not JSON (${(e as Error).message})`);
  }
  const config: ModelConfig =
    parsed.kind === 'multimodal' ? compileModelConfig(parsed) : parsed.kind === 'sequential' ? Object.freeze(parsed) : invalid();
  return fromTensorMap(config, Tokenizer.load(tokText), stored.tensors);
}

function invalid(): never {
  throw invalidArgument("base model: config metadata has an unknown kind; expected 'multimodal' or 'sequential'");
}

/** Named float32 copy of a tensor. */
export function toNamed(t: tf.Tensor): NamedTensor {
  return { shape: [...t.shape], data: new Float32Array(t.dataSync()) };
}
