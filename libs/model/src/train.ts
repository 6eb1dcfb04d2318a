import * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '@fedmm/core';
import {
  adapterDelta,
  adapterLayout,
  adapterNorm,
  adapterScale,
  applyAdapterDelta,
  initAdapters,
  selectAdapters,
  validateAdapters,
  type AdapterSet,
} from './adapters.js';
import { BaseModel, fromTensorMap, initialWeights } from './base.js';
import { baseWeightSpecs, compileModelConfig, type MultimodalConfig, type MultimodalConfigInput } from './config.js';
import { prepareSamples, presentModalities } from './batch.js';
import type { AdapterTensors, ForwardParams } from './forward.js';
import { runLoop, type LoopOptions, type TrainStats } from './loop.js';
import { Tokenizer } from './tokenizer.js';
import type { Modality, ModuleGroup, Sample, TensorMap } from './types.js';

/** Options of local adapter training. */
export interface TrainOptions extends LoopOptions {
  readonly base: BaseModel;
  /** Starting adapters; only those of modalities present in `samples` (and fusion/head) are trained. */
  readonly adapters: AdapterSet;
  readonly samples: readonly Sample[];
  /** FedProx coefficient mu: adds (mu / 2) ||w - w_global||^2 to the loss (default 0). */
  readonly proxMu?: number;
  /** The round's global adapters, anchor of FedProx and of clipping (default: `adapters`). */
  readonly globalAdapters?: AdapterSet;
  /** Bounds the L2 norm of the update (result - global); a larger update is scaled down to it. */
  readonly clipNorm?: number;
}

/** Local training result: the trained adapters (only the modalities present) and figures. */
export interface TrainResult {
  readonly adapters: AdapterSet;
  readonly modalities: readonly Modality[];
  readonly stats: TrainStats & {
    /** L2 norm of result - global before clipping. */
    readonly updateNorm: number;
    readonly clipped: boolean;
  };
}

function adapterGroupMap(base: BaseModel, a: AdapterSet): Map<string, ModuleGroup> {
  return new Map(adapterLayout(base, a.rank).map((t) => [t.name, t.group]));
}

function tensorsOf(a: AdapterSet): Map<string, tf.Tensor> {
  return new Map([...a.tensors].map(([name, t]) => [name, tf.tensor(t.data, [...t.shape], 'float32')]));
}

function baseParams(base: BaseModel, adapters: AdapterTensors[]): ForwardParams {
  return { weight: (name) => base.weight(name), adapters };
}

function withValues(a: AdapterSet, values: Map<string, Float32Array>): AdapterSet {
  const tensors: TensorMap = new Map();
  for (const [name, t] of a.tensors) tensors.set(name, { shape: t.shape, data: values.get(name) ?? new Float32Array(t.data) });
  return { rank: a.rank, alpha: a.alpha, tensors };
}

/** The squared distance sum_k ||x_k - anchor_k||^2 over the named tensors. */
function squaredDistance(current: ReadonlyMap<string, tf.Tensor>, anchor: ReadonlyMap<string, tf.Tensor>): tf.Scalar {
  const terms = [...current].map(([name, x]) => tf.sum<tf.Scalar>(tf.square(tf.sub(x, anchor.get(name)!))));
  return terms.length === 1 ? terms[0]! : tf.addN(terms);
}

/**
 * Trains LoRA adapters on local samples with the base frozen. Deterministic for a seed on one backend.
 * Adapters of modalities absent from every sample are neither trained nor returned.
 */
export function train(options: TrainOptions): TrainResult {
  const { base } = options;
  validateAdapters(base, options.adapters);
  const prepared = prepareSamples(base.config, options.samples);
  const modalities = [...presentModalities(prepared)];
  const start = selectAdapters(base, options.adapters, modalities);
  const global = options.globalAdapters ? selectAdapters(base, options.globalAdapters, modalities) : start;
  if (options.globalAdapters) validateAdapters(base, options.globalAdapters);
  for (const name of start.tensors.keys()) {
    if (!global.tensors.has(name)) throw invalidArgument(`train: globalAdapters lacks ${name}, which this company trains`);
  }
  const mu = options.proxMu ?? 0;
  if (!(Number.isFinite(mu) && mu >= 0)) throw invalidArgument(`train: proxMu must be a non-negative number, got ${mu}`);
  if (options.clipNorm !== undefined && !(options.clipNorm > 0)) {
    throw invalidArgument(`train: clipNorm must be a positive number, got ${options.clipNorm}`);
  }
  const scale = adapterScale(start);
  const anchor = mu > 0 ? tensorsOf(global) : undefined;
  try {
    const { values, stats } = runLoop({
      ...options,
      config: base.config,
      prepared,
      trainable: tensorsOf(start),
      groups: adapterGroupMap(base, start),
      params: (current) => baseParams(base, [{ scale, tensors: current }]),
      ...(anchor ? { penalty: (current) => tf.mul<tf.Scalar>(squaredDistance(current, anchor), mu / 2) } : {}),
    });
    let result = withValues(start, values);
    const delta = adapterDelta(result, global);
    const updateNorm = adapterNorm(delta);
    const clipped = options.clipNorm !== undefined && updateNorm > options.clipNorm;
    if (clipped && options.clipNorm !== undefined) result = applyAdapterDelta(global, delta, options.clipNorm / updateNorm);
    return { adapters: result, modalities, stats: { ...stats, updateNorm, clipped } };
  } finally {
    if (anchor) tf.dispose([...anchor.values()]);
  }
}

/** Options of personalised (Ditto-style) training of a private adapter stacked on the shared one. */
export interface PersonalTrainOptions extends LoopOptions {
  readonly base: BaseModel;
  /** The shared (global) adapters, frozen here. */
  readonly shared: AdapterSet;
  /** A personal adapter to continue from; default a fresh one (B = 0, so training starts at the shared model). */
  readonly personal?: AdapterSet;
  readonly samples: readonly Sample[];
  /**
   * Ditto's lambda: adds (lambda / 2) ||v - w||^2 where v - w = (alpha / r) (B A)^T is the personal
   * adapter's change to each kernel, pulling the personalised model towards the shared one (default 0.1).
   */
  readonly lambda?: number;
  /** Rank and alpha of a fresh personal adapter (default: the shared adapter's). */
  readonly rank?: number;
  readonly alpha?: number;
  /** Restrict a fresh personal adapter to these modules, e.g. ['head'] for a FedPer-style private head. */
  readonly modules?: readonly string[];
}

/** Trains a private adapter on top of the frozen shared one; the personalised model is base + shared + personal. */
export function trainPersonal(options: PersonalTrainOptions): { personal: AdapterSet; stats: TrainStats } {
  const { base } = options;
  validateAdapters(base, options.shared);
  const prepared = prepareSamples(base.config, options.samples);
  const modalities = [...presentModalities(prepared)];
  let personal =
    options.personal ??
    initAdapters(base, {
      rank: options.rank ?? options.shared.rank,
      alpha: options.alpha ?? options.shared.alpha,
      seed: options.seed,
      modalities,
    });
  validateAdapters(base, personal);
  if (options.modules && !options.personal) {
    const keep = new Set(options.modules);
    personal = { ...personal, tensors: new Map([...personal.tensors].filter(([name]) => keep.has(name.replace(/\.lora_[AB]$/, '')))) };
  }
  personal = selectAdapters(base, personal, modalities);
  const lambda = options.lambda ?? 0.1;
  if (!(Number.isFinite(lambda) && lambda >= 0)) throw invalidArgument(`trainPersonal: lambda must be non-negative, got ${lambda}`);
  const shared = tensorsOf(options.shared);
  const sharedScale = adapterScale(options.shared);
  const scale = adapterScale(personal);
  const modules = [...personal.tensors.keys()].filter((n) => n.endsWith('.lora_A')).map((n) => n.slice(0, -'.lora_A'.length));
  try {
    const { values, stats } = runLoop({
      ...options,
      config: base.config,
      prepared,
      trainable: tensorsOf(personal),
      groups: adapterGroupMap(base, personal),
      params: (current) =>
        baseParams(base, [
          { scale: sharedScale, tensors: shared },
          { scale, tensors: current },
        ]),
      ...(lambda > 0
        ? {
            penalty: (current) => {
              const terms = modules.map((m) =>
                tf.sum(tf.square(tf.matMul(current.get(`${m}.lora_B`)! as tf.Tensor2D, current.get(`${m}.lora_A`)! as tf.Tensor2D))),
              );
              return tf.mul<tf.Scalar>(tf.addN(terms), (lambda / 2) * scale * scale);
            },
          }
        : {}),
    });
    return { personal: withValues(personal, values), stats };
  } finally {
    tf.dispose([...shared.values()]);
  }
}

/** Options of base-model pretraining on a public split. */
export interface PretrainOptions extends LoopOptions {
  readonly config: MultimodalConfigInput | MultimodalConfig;
  /** Samples whose tokens come from `tokenizer` (fit it on the public texts first). */
  readonly samples: readonly Sample[];
  readonly tokenizer?: Tokenizer;
  /** Start from this model's weights instead of a fresh seeded initialisation. */
  readonly init?: BaseModel;
}

/**
 * Trains every base weight from scratch (or from `init`) on public samples. Uses only kernels whose
 * gradients the wasm backend has: the embedding table is read by a bag-of-words matmul, not a gather.
 */
export function pretrain(options: PretrainOptions): { base: BaseModel; stats: TrainStats } {
  const config = 'kind' in options.config ? options.config : compileModelConfig(options.config);
  const tokenizer = options.tokenizer ?? options.init?.tokenizer ?? new Tokenizer({ vocabSize: config.vocabSize });
  const start: TensorMap = options.init
    ? new Map([...options.init.weights].map(([n, w]) => [n, { shape: w.shape, data: w.dataSync() as Float32Array }]))
    : initialWeights(config, options.seed);
  const prepared = prepareSamples(config, options.samples);
  const trainable = new Map([...start].map(([n, t]) => [n, tf.tensor(t.data, [...t.shape], 'float32')]));
  const { values, stats } = runLoop({
    ...options,
    config,
    prepared,
    trainable,
    groups: new Map(baseWeightSpecs(config).map((w) => [w.name, w.group])),
    params: (current) => ({ weight: (name) => current.get(name)!, adapters: [] }),
  });
  const weights: TensorMap = new Map(
    baseWeightSpecs(config).map((s) => [s.name, { shape: s.shape, data: values.get(s.name)! }]),
  );
  return { base: fromTensorMap(config, tokenizer, weights), stats };
}
