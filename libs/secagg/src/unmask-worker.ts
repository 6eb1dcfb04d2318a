// A thread of an UnmaskPool: removes the masks of one job from its words and sends them back.
import { parentPort } from 'node:worker_threads';
import { applyMasks, type SignedSeed } from './prg.js';

/** One part of a shard, sent by UnmaskPool; `words` arrives transferred and goes back the same way. */
export interface UnmaskJob {
  readonly id: number;
  readonly masks: readonly SignedSeed[];
  readonly offset: number;
  readonly words: Uint32Array;
}

/** The answer to a job: its words with the masks applied, or why that failed. */
export type UnmaskJobResult = { readonly id: number; readonly words: Uint32Array } | { readonly id: number; readonly error: string };

const port = parentPort;
if (port === null) throw new Error('unmask-worker.js runs only as a worker thread of an UnmaskPool');
port.on('message', (job: UnmaskJob) => {
  let result: UnmaskJobResult;
  try {
    applyMasks(job.words, job.masks, job.offset);
    result = { id: job.id, words: job.words };
  } catch (e) {
    result = { id: job.id, error: e instanceof Error ? e.message : String(e) };
  }
  // The seeds are round-confidential: this copy is not kept.
  for (const m of job.masks) m.seed.fill(0);
  port.postMessage(result, 'words' in result ? [result.words.buffer as ArrayBuffer] : []);
});
