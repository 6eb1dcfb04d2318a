import * as tf from '@tensorflow/tfjs';
import { invalidArgument } from '@fedmm/core';
import { BaseModel, sameShape } from './base.js';
import { denseModules, type ModelConfig } from './config.js';
import { deriveSeed, mulberry32 } from './rng.js';
import { MODALITIES, type Modality, type ModuleGroup, type NamedTensor, type TensorMap } from './types.js';

/**
 * A set of LoRA adapters in PEFT orientation: for module m with a kernel W of shape [in, out]
 * (y = x W + b), `m.lora_A` is [r, in] and `m.lora_B` is [out, r], and the adapted layer computes
 * y = x W + b + (alpha / r) x A^T B^T, i.e. the merged kernel is W + (alpha / r) (B A)^T.
 * A set may hold only some modules (a company trains only the modalities it has).
 */
export interface AdapterSet {
  readonly rank: number;
  readonly alpha: number;
  readonly tensors: TensorMap;
}

/** One adapter tensor of a model's layout. */
export interface AdapterTensorInfo {
  readonly name: string;
  readonly module: string;
  readonly part: 'lora_A' | 'lora_B';
  readonly shape: readonly [number, number];
  readonly group: ModuleGroup;
}

/** Every adapter tensor a model can carry at rank r, in the stable order used for transport. */
export function adapterLayout(model: BaseModel | ModelConfig, rank: number): AdapterTensorInfo[] {
  const config = model instanceof BaseModel ? model.config : model;
  checkRank(rank);
  const out: AdapterTensorInfo[] = [];
  for (const m of denseModules(config)) {
    out.push({ name: `${m.name}.lora_A`, module: m.name, part: 'lora_A', shape: [rank, m.inDim], group: m.group });
    out.push({ name: `${m.name}.lora_B`, module: m.name, part: 'lora_B', shape: [m.outDim, rank], group: m.group });
  }
  return out;
}

/** Names of the adapter tensors a company holding the given modalities trains and sends. */
export function adapterNamesFor(model: BaseModel | ModelConfig, modalities: Iterable<Modality>, rank: number): string[] {
  const have = new Set<ModuleGroup>(modalities);
  have.add('shared');
  return adapterLayout(model, rank)
    .filter((t) => have.has(t.group))
    .map((t) => t.name);
}

function checkRank(rank: number): void {
  if (!Number.isInteger(rank) || rank < 1) throw invalidArgument(`adapters: rank must be a positive integer, got ${rank}`);
}

/** Options of `initAdapters`. */
export interface InitAdaptersOptions {
  readonly rank: number;
  readonly alpha: number;
  readonly seed: number;
  /** Modalities to create adapters for (default: all); fusion and head adapters are always created. */
  readonly modalities?: Iterable<Modality>;
}

/**
 * Fresh adapters: A uniform in +-1/sqrt(in) (PEFT's kaiming-uniform bound), B zero, so the adapted
 * model starts equal to the base. Deterministic for a seed.
 */
export function initAdapters(model: BaseModel | ModelConfig, options: InitAdaptersOptions): AdapterSet {
  if (!(Number.isFinite(options.alpha) && options.alpha > 0)) {
    throw invalidArgument(`adapters: alpha must be a positive number, got ${options.alpha}`);
  }
  const names = new Set(adapterNamesFor(model, options.modalities ?? MODALITIES, options.rank));
  const tensors: TensorMap = new Map();
  for (const info of adapterLayout(model, options.rank)) {
    if (!names.has(info.name)) continue;
    const data = new Float32Array(info.shape[0] * info.shape[1]);
    if (info.part === 'lora_A') {
      const bound = 1 / Math.sqrt(info.shape[1]);
      const rng = mulberry32(deriveSeed(options.seed, info.name));
      for (let i = 0; i < data.length; i++) data[i] = (rng.next() * 2 - 1) * bound;
    }
    tensors.set(info.name, { shape: info.shape, data });
  }
  return { rank: options.rank, alpha: options.alpha, tensors };
}

/** The scale alpha / r applied to an adapter's product. */
export function adapterScale(a: AdapterSet): number {
  return a.alpha / a.rank;
}

/** Checks that an adapter set fits a model: known names, right shapes, A and B in pairs. */
export function validateAdapters(model: BaseModel | ModelConfig, adapters: AdapterSet): void {
  const layout = new Map(adapterLayout(model, adapters.rank).map((t) => [t.name, t]));
  for (const [name, t] of adapters.tensors) {
    const info = layout.get(name);
    if (!info) throw invalidArgument(`adapters: ${name} is not an adapter tensor of this model at rank ${adapters.rank}`, { tensor: name });
    if (!sameShape(t.shape, info.shape) || t.data.length !== info.shape[0] * info.shape[1]) {
      throw invalidArgument(`adapters: ${name} has shape [${t.shape}], expected [${info.shape}]`, { tensor: name });
    }
    const partner = info.part === 'lora_A' ? `${info.module}.lora_B` : `${info.module}.lora_A`;
    if (!adapters.tensors.has(partner)) throw invalidArgument(`adapters: ${name} comes without ${partner}`, { tensor: name });
  }
}

/** The modalities (and 'shared') whose modules the adapter set covers. */
export function adapterGroups(model: BaseModel | ModelConfig, adapters: AdapterSet): Set<ModuleGroup> {
  const groups = new Set<ModuleGroup>();
  for (const info of adapterLayout(model, adapters.rank)) if (adapters.tensors.has(info.name)) groups.add(info.group);
  return groups;
}

/** The part of an adapter set that a company holding the given modalities trains and sends. */
export function selectAdapters(model: BaseModel | ModelConfig, adapters: AdapterSet, modalities: Iterable<Modality>): AdapterSet {
  const keep = new Set(adapterNamesFor(model, modalities, adapters.rank));
  const tensors: TensorMap = new Map();
  for (const [name, t] of adapters.tensors) if (keep.has(name)) tensors.set(name, t);
  return { rank: adapters.rank, alpha: adapters.alpha, tensors };
}

/** A deep copy of an adapter set. */
export function cloneAdapters(a: AdapterSet): AdapterSet {
  const tensors: TensorMap = new Map();
  for (const [name, t] of a.tensors) tensors.set(name, { shape: [...t.shape], data: new Float32Array(t.data) });
  return { rank: a.rank, alpha: a.alpha, tensors };
}

function pairwise(a: AdapterSet, b: AdapterSet, what: string, f: (x: NamedTensor, y: NamedTensor) => NamedTensor): AdapterSet {
  if (a.rank !== b.rank || a.alpha !== b.alpha) {
    throw invalidArgument(`${what}: adapters differ in rank/alpha (${a.rank}/${a.alpha} vs ${b.rank}/${b.alpha})`);
  }
  const tensors: TensorMap = new Map();
  for (const [name, x] of a.tensors) {
    const y = b.tensors.get(name);
    if (!y) throw invalidArgument(`${what}: ${name} is missing from the second adapter set`, { tensor: name });
    if (!sameShape(x.shape, y.shape)) throw invalidArgument(`${what}: ${name} shapes differ ([${x.shape}] vs [${y.shape}])`);
    tensors.set(name, f(x, y));
  }
  return { rank: a.rank, alpha: a.alpha, tensors };
}

/** The update `adapters - global` over the tensors of `adapters` (what a client sends). */
export function adapterDelta(adapters: AdapterSet, global: AdapterSet): AdapterSet {
  return pairwise(adapters, global, 'adapterDelta', (x, y) => {
    const d = new Float32Array(x.data.length);
    for (let i = 0; i < d.length; i++) d[i] = x.data[i]! - y.data[i]!;
    return { shape: x.shape, data: d };
  });
}

/** `global + scale * delta` over the tensors of `delta`; tensors of `global` not in `delta` are kept. */
export function applyAdapterDelta(global: AdapterSet, delta: AdapterSet, scale = 1): AdapterSet {
  const applied = pairwise(delta, global, 'applyAdapterDelta', (d, g) => {
    const out = new Float32Array(g.data.length);
    for (let i = 0; i < out.length; i++) out[i] = g.data[i]! + scale * d.data[i]!;
    return { shape: g.shape, data: out };
  });
  const tensors: TensorMap = new Map();
  for (const [name, g] of global.tensors) tensors.set(name, applied.tensors.get(name) ?? { shape: g.shape, data: new Float32Array(g.data) });
  return { rank: global.rank, alpha: global.alpha, tensors };
}

/** The L2 norm over every tensor of a set. */
export function adapterNorm(a: AdapterSet): number {
  let s = 0;
  for (const t of a.tensors.values()) for (let i = 0; i < t.data.length; i++) s += t.data[i]! * t.data[i]!;
  return Math.sqrt(s);
}

/**
 * Folds adapters into a new base model: each adapted kernel becomes W + (alpha / r) (B A)^T.
 * With several sets (a shared and a personal adapter) their products are added in order.
 */
export function mergeAdapters(base: BaseModel, adapters: AdapterSet | readonly AdapterSet[]): BaseModel {
  const sets = Array.isArray(adapters) ? (adapters as readonly AdapterSet[]) : [adapters as AdapterSet];
  for (const s of sets) validateAdapters(base, s);
  const weights = new Map<string, tf.Tensor>();
  for (const [name, w] of base.weights) {
    const module = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : undefined;
    const merged = tf.tidy(() => {
      let out = w.clone();
      if (module === undefined) return out;
      for (const s of sets) {
        const a = s.tensors.get(`${module}.lora_A`);
        const b = s.tensors.get(`${module}.lora_B`);
        if (!a || !b) continue;
        const ba = tf.matMul(tf.tensor2d(b.data, [b.shape[0]!, b.shape[1]!]), tf.tensor2d(a.data, [a.shape[0]!, a.shape[1]!]));
        out = out.add(ba.transpose().mul(adapterScale(s)));
      }
      return out;
    });
    weights.set(name, merged);
  }
  return new BaseModel(base.config, base.tokenizer, weights);
}
