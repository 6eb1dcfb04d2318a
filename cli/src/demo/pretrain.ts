import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FedmmError } from '@fedmm/core';
import { loadSamples } from '@fedmm/data';
import { Tokenizer, adapterLayout, evaluate, initAdapters, loadBase, pretrain, saveBase, type AdapterSet, type BaseModel, type MultimodalConfigInput } from '@fedmm/model';
import { parseSafetensors, serializeSafetensors, makeTensor, toFloat32, type Tensor } from '@fedmm/tensor';
import { modelCardOf, toModelSamples, DEFAULT_MAX_TOKENS, type ModelCard } from './model-card.js';
import type { NamedArrays, RegistryClient } from './registry-client.js';

/** Settings of base pretraining; together with the data they name the cached base. */
export interface PretrainSettings {
  /** The public split (a dataset folder with manifest.jsonl and labels.json). */
  readonly publicDir: string;
  readonly epochs: number;
  readonly seed: number;
  readonly batchSize?: number;
  readonly lr?: number;
  readonly dModel?: number;
  readonly vocabSize?: number;
  readonly maxTokens?: number;
  /** Where pretrained bases are cached, keyed by data and settings; unset: no cache. */
  readonly cacheDir?: string;
  readonly onEpoch?: (epoch: number, epochs: number, loss: number) => void;
}

/** A pretrained base with the facts needed to register and reuse it. */
export interface PretrainedBase {
  readonly base: BaseModel;
  readonly classes: readonly string[];
  readonly maxTokens: number;
  /** Accuracy of the base alone on the public split it was trained on. */
  readonly publicAccuracy: number;
  readonly seconds: number;
  /** Whether it came from the cache. */
  readonly cached: boolean;
  readonly cacheFile?: string;
  readonly info: Record<string, string | number>;
}

function readClasses(publicDir: string): string[] {
  for (const f of [join(publicDir, 'labels.json'), join(publicDir, '..', 'labels.json')]) {
    if (existsSync(f)) return JSON.parse(readFileSync(f, 'utf8')) as string[];
  }
  throw new FedmmError('FAILED_PRECONDITION', `no labels.json in ${publicDir} or its parent; generate the benchmark with fedmm data synth or add the class list`);
}

function fileDigest(path: string): string {
  return existsSync(path) ? createHash('sha256').update(readFileSync(path)).digest('hex') : 'none';
}

/** Pretrains the base on the public split, or loads it from the cache when data and settings match. */
export async function pretrainBase(s: PretrainSettings): Promise<PretrainedBase> {
  const manifest = join(s.publicDir, 'manifest.jsonl');
  if (!existsSync(manifest)) throw new FedmmError('NOT_FOUND', `no manifest.jsonl in ${s.publicDir}; point --data at the benchmark's public/ split`);
  const classes = readClasses(s.publicDir);
  const maxTokens = s.maxTokens ?? DEFAULT_MAX_TOKENS;
  const config: MultimodalConfigInput = { numClasses: classes.length, dModel: s.dModel ?? 64, vocabSize: s.vocabSize ?? 4096 };
  const settings = { config, epochs: s.epochs, seed: s.seed, batchSize: s.batchSize ?? 32, lr: s.lr ?? 3e-3, maxTokens, classes };
  // The manifest digest stands for the data: same benchmark seed and version, same bytes.
  const key = createHash('sha256').update(JSON.stringify({ settings, manifest: fileDigest(manifest), v: 1 })).digest('hex').slice(0, 16);
  const cacheFile = s.cacheDir ? join(s.cacheDir, `base-${key}.safetensors`) : undefined;
  const info = { publicDir: s.publicDir, epochs: s.epochs, seed: s.seed, lr: settings.lr, batchSize: settings.batchSize, cacheKey: key };
  if (cacheFile && existsSync(cacheFile)) {
    const parsed = parseSafetensors(readFileSync(cacheFile));
    const tensors = new Map([...parsed.tensors].map(([n, t]) => [n, { shape: [...t.shape], data: Float32Array.from(toFloat32(t)) }]));
    const meta = parsed.header.metadata ?? {};
    const base = loadBase({ tensors, metadata: { ...meta } });
    return { base, classes, maxTokens, publicAccuracy: Number(meta['fedmm.pretrain.accuracy'] ?? NaN), seconds: 0, cached: true, cacheFile, info };
  }
  const loaded = await loadSamples(s.publicDir, { classes });
  const tokenizer = new Tokenizer({ vocabSize: config.vocabSize! }).fit(loaded.samples.flatMap((x) => (x.text ? [x.text] : [])));
  const samples = toModelSamples(loaded.samples, tokenizer, maxTokens);
  const started = performance.now();
  let lastEpoch = 0;
  const { base, stats } = pretrain({
    config,
    samples,
    tokenizer,
    epochs: settings.epochs,
    batchSize: settings.batchSize,
    lr: settings.lr,
    seed: s.seed,
    onProgress: (p) => {
      if (p.step === p.stepsPerEpoch && p.epoch !== lastEpoch) {
        lastEpoch = p.epoch;
        s.onEpoch?.(p.epoch, p.epochs, p.loss);
      }
    },
  });
  const seconds = (performance.now() - started) / 1000;
  const publicAccuracy = evaluate(base, undefined, samples).accuracy;
  if (cacheFile) {
    mkdirSync(s.cacheDir!, { recursive: true });
    const stored = saveBase(base);
    const named = new Map<string, Tensor>([...stored.tensors].map(([n, t]) => [n, makeTensor('F32', [...t.shape], t.data)]));
    const tmp = `${cacheFile}.tmp-${process.pid}`;
    writeFileSync(tmp, serializeSafetensors(named, { ...stored.metadata, 'fedmm.pretrain.accuracy': String(publicAccuracy), 'fedmm.pretrain.loss': String(stats.epochLoss.at(-1) ?? NaN) }));
    renameSync(tmp, cacheFile);
  }
  return { base, classes, maxTokens, publicAccuracy, seconds, cached: false, ...(cacheFile ? { cacheFile } : {}), info };
}

/** The adapter tensors of a set with their modality tags, ready for upload. */
export function adapterArrays(base: BaseModel, adapters: AdapterSet): NamedArrays {
  const groups = new Map(adapterLayout(base, adapters.rank).map((t) => [t.name, t.group]));
  const out: NamedArrays = new Map();
  for (const [name, t] of adapters.tensors) {
    const g = groups.get(name);
    out.set(name, { shape: t.shape, data: t.data, ...(g && g !== 'shared' ? { modality: g } : {}) });
  }
  return out;
}

/** What registering a base produced. */
export interface RegisteredBase {
  readonly modelId: string;
  readonly baseVersionId: string;
  /** The zero-delta adapter version (B = 0): round 1's input and the task's base version. */
  readonly adapterVersionId: string;
  readonly card: ModelCard;
  readonly baseBytes: number;
  readonly adapterBytes: number;
}

/**
 * Registers a pretrained base: the model with its card as config_json, the base weights (kind base)
 * and an initial adapter version (kind adapter, parent the base) whose B matrices are zero, so the
 * adapted model equals the base until a round publishes.
 */
export async function registerBase(registry: RegistryClient, modelId: string, p: PretrainedBase, lora: { rank: number; alpha: number; seed: number }): Promise<RegisteredBase> {
  const card = modelCardOf(p.base, p.classes, { rank: lora.rank, alpha: lora.alpha }, p.maxTokens, { ...p.info, publicAccuracy: Number(p.publicAccuracy.toFixed(4)) });
  await registry.ensureModel(modelId, `multimodal incident classifier (${p.classes.length} classes), pretrained on ${p.info['publicDir'] ?? 'public data'}`, JSON.stringify(card));
  const stored = saveBase(p.base);
  const base = await registry.uploadVersion({ modelId, kind: 'base', tensors: stored.tensors, metadata: stored.metadata, metrics: { public_accuracy: p.publicAccuracy } });
  const adapters = initAdapters(p.base, { rank: lora.rank, alpha: lora.alpha, seed: lora.seed });
  const initial = await registry.uploadVersion({
    modelId,
    kind: 'adapter',
    parentVersionId: base.versionId,
    tensors: adapterArrays(p.base, adapters),
    metadata: { 'fedmm.lora.rank': String(lora.rank), 'fedmm.lora.alpha': String(lora.alpha) },
  });
  return { modelId, baseVersionId: base.versionId, adapterVersionId: initial.versionId, card, baseBytes: Number(base.artifactSize), adapterBytes: Number(initial.artifactSize) };
}
