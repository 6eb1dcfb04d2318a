import { Worker } from 'node:worker_threads';
import { FedmmError, type ErrorCode } from '@fedmm/core';
import type { Sample as DataSample } from '@fedmm/data';
import { privatizeBatchGradient } from '@fedmm/dp';
import { events as epb } from '@fedmm/proto';
import { adapterDelta, deriveSeed, train, type AdapterSet, type BackendChoice, type Sample as ModelSample, type Tokenizer, type TrainProgress, type TrainResult } from '@fedmm/model';
import type { RoundModel } from './model-source.js';
import type { UpdateTensor } from './update-payload.js';

/** Local training settings of one round, compiled from the round's client_config, strategy and privacy. */
export interface LocalTrainingConfig {
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  /** FedProx mu (0 = plain FedAvg training). */
  readonly proximalMu: number;
  /** Bound on the L2 norm of the update (undefined = no clipping). */
  readonly clipNorm?: number;
  /** Record-level DP-SGD: per-example clip and noise multiplier. */
  readonly recordDp?: { readonly clipNorm: number; readonly noiseMultiplier: number };
}

/** Defaults when a round's client_config leaves a setting out. */
export const TRAINING_DEFAULTS = Object.freeze({ epochs: 1, batchSize: 32, learningRate: 1e-3 });

/** Tokens kept per text (the text encoder reads a bag of words, so longer texts are only truncated). */
export const MAX_TOKENS = 64;

function positive(v: number | undefined): number | undefined {
  return v !== undefined && Number.isFinite(v) && v > 0 ? v : undefined;
}

/**
 * Reads a round's settings: client_config keys `epochs` (or `local_epochs`), `batch_size`,
 * `learning_rate` (or `lr`), `proximal_mu` (else the strategy's `mu` under fedprox), `clip_norm`;
 * the strategy's clip norm (client-level DP) bounds the update too. Record-level DP shapes the
 * batches to the planned `sampling_rate` and steps to `local_steps` so the spend matches the reservation.
 */
export function compileTrainingConfig(opened: epb.RoundOpened, numSamples: number): LocalTrainingConfig {
  const cc = opened.clientConfig;
  const mode = opened.privacy?.mode || 'none';
  let epochs = Math.max(1, Math.round(positive(cc['epochs']) ?? positive(cc['local_epochs']) ?? TRAINING_DEFAULTS.epochs));
  let batchSize = Math.max(1, Math.round(positive(cc['batch_size']) ?? TRAINING_DEFAULTS.batchSize));
  const learningRate = positive(cc['learning_rate']) ?? positive(cc['lr']) ?? TRAINING_DEFAULTS.learningRate;
  const strategyMu = opened.strategy?.name === 'fedprox' ? positive(opened.strategy.params['mu']) : undefined;
  const proximalMu = positive(cc['proximal_mu']) ?? strategyMu ?? 0;
  const clips = [positive(cc['clip_norm']), positive(opened.strategy?.clipNorm), mode === 'client' ? positive(opened.privacy?.clipNorm) : undefined].filter((x): x is number => x !== undefined);
  const clipNorm = clips.length > 0 ? Math.min(...clips) : undefined;
  let recordDp: LocalTrainingConfig['recordDp'];
  if (mode === 'record') {
    const clip = positive(opened.privacy?.clipNorm);
    const sigma = positive(opened.privacy?.noiseMultiplier);
    if (clip === undefined || sigma === undefined) {
      throw new FedmmError('FAILED_PRECONDITION', 'record-level DP needs privacy.clip_norm and privacy.noise_multiplier in the round; the task is misconfigured — tell the operator');
    }
    recordDp = { clipNorm: clip, noiseMultiplier: sigma };
    const q = positive(cc['sampling_rate']);
    if (q !== undefined) batchSize = Math.max(1, Math.min(numSamples, Math.round(q * numSamples)));
    const plannedSteps = positive(cc['local_steps']);
    if (plannedSteps !== undefined) epochs = Math.max(1, Math.floor(plannedSteps / Math.ceil(numSamples / batchSize)));
  } else if (mode !== 'none' && mode !== 'client') {
    throw new FedmmError('FAILED_PRECONDITION', `privacy mode ${JSON.stringify(mode)} is not supported by this agent; upgrade it`);
  }
  return { epochs, batchSize, learningRate, proximalMu, ...(clipNorm !== undefined ? { clipNorm } : {}), ...(recordDp ? { recordDp } : {}) };
}

/** Turns loaded samples into model samples, tokenising texts with the base model's tokenizer. */
export function toModelSamples(samples: readonly DataSample[], tokenizer: Tokenizer, maxTokens = MAX_TOKENS): ModelSample[] {
  return samples.map((s) => {
    const out: { image?: Float32Array; tokens?: Int32Array; sensor?: Float32Array; label: number } = { label: s.label };
    if (s.image) out.image = s.image;
    if (s.text !== undefined && s.text.length > 0) out.tokens = tokenizer.encode(s.text, maxTokens);
    if (s.sensor) out.sensor = s.sensor;
    return out;
  });
}

/** What local training of one round produced. */
export interface RoundTraining {
  /** trained - global, only the tensors of this company's modalities (and the shared ones) that the round's layout holds. */
  readonly delta: UpdateTensor[];
  readonly numExamples: number;
  readonly result: TrainResult;
  readonly config: LocalTrainingConfig;
  /** Record-level DP accounting for the upload header (zeros when off). */
  readonly dp: { readonly samplingRate: number; readonly noiseMultiplier: number; readonly steps: number };
}

/** A DP-SGD hook for the model's training loop: per-example gradients clipped, summed, noised (node:crypto source), averaged. */
export function recordDpHook(clipNorm: number, noiseMultiplier: number): (perExample: Map<string, Float32Array>[]) => Map<string, Float32Array> {
  return (perExample) => {
    if (perExample.length === 0) throw new FedmmError('INTERNAL', 'DP-SGD hook called with an empty batch');
    // An example without some modality has no gradient for its tensors: take the union of names, zeros where absent.
    const sizeOf = new Map<string, number>();
    for (const g of perExample) for (const [n, v] of g) sizeOf.set(n, v.length);
    const names = [...sizeOf.keys()].sort();
    const sizes = names.map((n) => sizeOf.get(n)!);
    const dim = sizes.reduce((a, b) => a + b, 0);
    const flats = perExample.map((g) => {
      const flat = new Float32Array(dim);
      let at = 0;
      names.forEach((n, i) => {
        const v = g.get(n);
        if (v) flat.set(v, at);
        at += sizes[i]!;
      });
      return flat;
    });
    const noisy = privatizeBatchGradient(flats, clipNorm, noiseMultiplier);
    const out = new Map<string, Float32Array>();
    let at = 0;
    names.forEach((n, i) => {
      out.set(n, noisy.slice(at, at + sizes[i]!));
      at += sizes[i]!;
    });
    return out;
  };
}

/**
 * Trains the round's global adapters on the company's samples and returns the delta to upload.
 * The seed is derived from the agent's seed and the round, so a rerun of a round gives the same update.
 */
export function trainRound(input: {
  model: RoundModel;
  samples: readonly ModelSample[];
  opened: epb.RoundOpened;
  taskId: string;
  round: number;
  seed: number;
  onProgress?: (p: TrainProgress) => void;
}): RoundTraining {
  const config = compileTrainingConfig(input.opened, input.samples.length);
  const { base, adapters } = input.model;
  const seed = deriveSeed(input.seed, `${input.taskId}/${input.round}/${input.opened.attempt}`);
  const result = train({
    base,
    adapters,
    globalAdapters: adapters,
    samples: input.samples,
    epochs: config.epochs,
    batchSize: config.batchSize,
    lr: config.learningRate,
    seed,
    ...(config.proximalMu > 0 ? { proxMu: config.proximalMu } : {}),
    ...(config.clipNorm !== undefined ? { clipNorm: config.clipNorm } : {}),
    ...(config.recordDp ? { privatizeGradients: recordDpHook(config.recordDp.clipNorm, config.recordDp.noiseMultiplier) } : {}),
    ...(input.onProgress ? { onProgress: input.onProgress } : {}),
  });
  const delta = adapterDelta(result.adapters, adapters);
  const layoutNames = input.model.modalities;
  const tensors: UpdateTensor[] = [];
  for (const [name, t] of delta.tensors) {
    if (!(name in layoutNames)) continue;
    const modality = layoutNames[name];
    tensors.push({ name, shape: t.shape, data: t.data, ...(modality ? { modality } : {}) });
  }
  if (tensors.length === 0) {
    throw new FedmmError('FAILED_PRECONDITION', `none of the adapters trained for ${result.modalities.join(', ')} is in the round's layout; the task's adapters do not match this company's modalities`);
  }
  const n = input.samples.length;
  const dp = config.recordDp
    ? { samplingRate: config.batchSize / n, noiseMultiplier: config.recordDp.noiseMultiplier, steps: result.stats.steps }
    : { samplingRate: 0, noiseMultiplier: 0, steps: 0 };
  return { delta: tensors, numExamples: n, result, config, dp };
}

/** What the training worker needs: everything {@link trainRound} takes, with the base as its (sha256-checked) artifact file. */
export interface TrainingJob {
  readonly backend: BackendChoice;
  readonly baseFile: string;
  readonly baseVersionId: string;
  readonly inputVersionId: string;
  readonly adapters: AdapterSet;
  readonly modalities: Readonly<Record<string, string>>;
  readonly samples: readonly ModelSample[];
  /** The RoundOpened event, encoded. */
  readonly opened: Uint8Array;
  readonly taskId: string;
  readonly round: number;
  readonly seed: number;
}

/** Messages of the training worker. */
export type TrainingMessage =
  | { readonly kind: 'progress'; readonly progress: TrainProgress }
  | { readonly kind: 'done'; readonly training: RoundTraining }
  | { readonly kind: 'error'; readonly code: ErrorCode; readonly message: string };

/**
 * {@link trainRound} on a worker thread, so the agent's event loop keeps serving gRPC keepalives,
 * the round-event stream and signals however long training takes. Aborting `signal` terminates
 * the worker at once (mid-batch) and rejects with the signal's reason. Same seed, same backend,
 * same update as on the calling thread.
 */
export function trainRoundInWorker(input: {
  model: RoundModel;
  samples: readonly ModelSample[];
  opened: epb.RoundOpened;
  taskId: string;
  round: number;
  seed: number;
  backend: BackendChoice;
  signal?: AbortSignal;
  onProgress?: (p: TrainProgress) => void;
}): Promise<RoundTraining> {
  const job: TrainingJob = {
    backend: input.backend,
    baseFile: input.model.baseFile,
    baseVersionId: input.model.baseVersionId,
    inputVersionId: input.model.inputVersionId,
    adapters: input.model.adapters,
    modalities: input.model.modalities,
    samples: input.samples,
    opened: epb.RoundOpened.encode(input.opened).finish(),
    taskId: input.taskId,
    round: input.round,
    seed: input.seed,
  };
  return new Promise<RoundTraining>((resolve, reject) => {
    const { signal } = input;
    if (signal?.aborted) return reject(signal.reason as Error);
    const worker = new Worker(new URL('./training-worker.js', import.meta.url), { workerData: { fedmmTraining: job } });
    let settled = false;
    const settle = (err: unknown, training?: RoundTraining): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      if (training) resolve(training);
      else reject(err);
    };
    const onAbort = (): void => settle(signal?.reason ?? new FedmmError('ABORTED', 'local training cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: TrainingMessage) => {
      if (m.kind === 'progress') input.onProgress?.(m.progress);
      else if (m.kind === 'done') settle(undefined, m.training);
      else settle(new FedmmError(m.code, m.message));
    });
    worker.on('error', (e) => settle(new FedmmError('INTERNAL', `the training worker failed: ${e.message}`)));
    worker.on('exit', (code) => settle(new FedmmError('INTERNAL', `the training worker exited (code ${code}) before it finished`)));
  });
}
