// Entry point of the worker thread that trains one round (see trainRoundInWorker): the model's
// training loop is synchronous, so on the agent's own thread it would hold the event loop for the
// whole run — no keepalive acks, no round events, no SIGTERM — until the last batch.
import { parentPort, workerData } from 'node:worker_threads';
import { FedmmError, isFedmmError } from '@fedmm/core';
import { events as epb } from '@fedmm/proto';
import { initBackend, loadBase } from '@fedmm/model';
import { readArtifact } from './model-source.js';
import { trainRound } from './training.js';
import type { TrainingJob, TrainingMessage } from './training.js';

async function main(job: TrainingJob, post: (m: TrainingMessage) => void): Promise<void> {
  await initBackend(job.backend);
  const art = readArtifact(job.baseFile);
  const base = loadBase({ tensors: art.tensors, metadata: { ...art.metadata } });
  try {
    const training = trainRound({
      model: { base, baseFile: job.baseFile, baseVersionId: job.baseVersionId, inputVersionId: job.inputVersionId, adapters: job.adapters, modalities: job.modalities },
      samples: job.samples,
      opened: epb.RoundOpened.decode(job.opened),
      taskId: job.taskId,
      round: job.round,
      seed: job.seed,
      onProgress: (progress) => post({ kind: 'progress', progress }),
    });
    post({ kind: 'done', training });
  } finally {
    base.dispose();
  }
}

const port = parentPort;
if (port && (workerData as { fedmmTraining?: TrainingJob } | undefined)?.fedmmTraining) {
  const post = (m: TrainingMessage): void => port.postMessage(m);
  main((workerData as { fedmmTraining: TrainingJob }).fedmmTraining, post).catch((e: unknown) => {
    const err = isFedmmError(e) ? e : new FedmmError('INTERNAL', `local training failed: ${(e as Error)?.message ?? String(e)}`);
    post({ kind: 'error', code: err.code, message: err.message });
  });
}
