import { existsSync } from 'node:fs';
import { FedmmError } from '@fedmm/core';
import { evaluate, trainPersonal, validateAdapters, type AdapterSet, type BaseModel, type EvalResult, type Sample, type TrainStats } from '@fedmm/model';
import { serializeSafetensors, makeTensor } from '@fedmm/tensor';
import { writeFileAtomic } from './atomic-file.js';
import { ADAPTER_METADATA_KEYS, readArtifact } from './model-source.js';

/** Accuracy figures of one model on the company's test set. */
export interface AccuracySummary {
  readonly samples: number;
  readonly accuracy: number;
  readonly loss: number;
  /** Per class (by class name when known): support and accuracy. */
  readonly perClass: Record<string, { readonly support: number; readonly accuracy: number | null }>;
}

/** The company report's model figures: the shared model and, with personalization, base + shared + private adapter. */
export interface LocalEvaluation {
  readonly versionId: string;
  readonly shared: AccuracySummary;
  readonly personalized?: AccuracySummary;
  readonly personalTraining?: { readonly epochs: number; readonly seconds: number; readonly samplesPerSec: number; readonly finalLoss: number };
}

/** Settings of the private adapter (Ditto-style; see docs/MODEL.md). */
export interface PersonalizationOptions {
  readonly epochs?: number;
  readonly batchSize?: number;
  readonly lr?: number;
  /** Ditto's lambda: pull towards the shared model (default 0.1). */
  readonly lambda?: number;
  /** Keep only a private head adapter (FedPer-style) when set to ['head']. */
  readonly modules?: readonly string[];
  /** Continue from (and save to) this safetensors file, so the private adapter accumulates over rounds. */
  readonly file?: string;
}

function summarize(r: EvalResult, classes: readonly string[] | undefined): AccuracySummary {
  const perClass: Record<string, { support: number; accuracy: number | null }> = {};
  for (const c of r.perClass) perClass[classes?.[c.label] ?? String(c.label)] = { support: c.support, accuracy: Number.isNaN(c.accuracy) ? null : c.accuracy };
  return { samples: r.samples, accuracy: r.accuracy, loss: r.loss, perClass };
}

function loadPersonal(file: string | undefined, base: BaseModel): AdapterSet | undefined {
  if (!file || !existsSync(file)) return undefined;
  const art = readArtifact(file);
  const rank = Number(art.metadata[ADAPTER_METADATA_KEYS.rank]);
  const alpha = Number(art.metadata[ADAPTER_METADATA_KEYS.alpha]);
  if (!(rank > 0 && alpha > 0)) throw new FedmmError('DATA_LOSS', `the private adapter ${file} lacks its rank and alpha metadata; delete it to start a new one`);
  const set: AdapterSet = { rank, alpha, tensors: art.tensors };
  try {
    validateAdapters(base, set);
  } catch {
    return undefined; // a new base architecture: the old private adapter no longer fits
  }
  return set;
}

/** Saves an adapter set as safetensors with its rank and alpha in the metadata. */
export function saveAdapters(file: string, a: AdapterSet): void {
  const tensors = new Map([...a.tensors].map(([n, t]) => [n, makeTensor('F32', t.shape, t.data)]));
  writeFileAtomic(file, serializeSafetensors(tensors, { [ADAPTER_METADATA_KEYS.rank]: String(a.rank), [ADAPTER_METADATA_KEYS.alpha]: String(a.alpha) }));
}

/**
 * Accuracy of the shared model (base + shared adapters) on the company's own test set and, when
 * `personal` is given, of the personalized model: a private adapter trained on the company's
 * training samples on top of the frozen shared one.
 */
export function evaluateLocal(input: {
  versionId: string;
  base: BaseModel;
  shared: AdapterSet;
  testSamples: readonly Sample[];
  trainSamples?: readonly Sample[];
  classes?: readonly string[];
  personal?: PersonalizationOptions;
  seed: number;
}): LocalEvaluation {
  if (input.testSamples.length === 0) throw new FedmmError('INVALID_ARGUMENT', 'the test set is empty; point --test at a folder with a manifest of held-out samples');
  const shared = summarize(evaluate(input.base, input.shared, input.testSamples), input.classes);
  if (!input.personal) return { versionId: input.versionId, shared };
  if (!input.trainSamples || input.trainSamples.length === 0) throw new FedmmError('INVALID_ARGUMENT', 'personalization needs the training samples');
  const p = input.personal;
  const previous = loadPersonal(p.file, input.base);
  const started = Date.now();
  const { personal, stats } = trainPersonal({
    base: input.base,
    shared: input.shared,
    samples: input.trainSamples,
    epochs: p.epochs ?? 2,
    batchSize: p.batchSize ?? 32,
    lr: p.lr ?? 2e-3,
    seed: input.seed,
    ...(p.lambda !== undefined ? { lambda: p.lambda } : {}),
    ...(previous ? { personal: previous } : p.modules ? { modules: p.modules } : {}),
  });
  if (p.file) saveAdapters(p.file, personal);
  const personalized = summarize(evaluate(input.base, [input.shared, personal], input.testSamples), input.classes);
  return { versionId: input.versionId, shared, personalized, personalTraining: trainingFigures(stats, Date.now() - started) };
}

function trainingFigures(s: TrainStats, ms: number): NonNullable<LocalEvaluation['personalTraining']> {
  return { epochs: s.epochs, seconds: ms / 1000, samplesPerSec: s.samplesPerSec, finalLoss: s.epochLoss[s.epochLoss.length - 1] ?? Number.NaN };
}
