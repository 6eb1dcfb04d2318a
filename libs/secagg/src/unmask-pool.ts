import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { FedmmError, invalidArgument } from '@fedmm/core';
import { applyMasks, type SignedSeed } from './prg.js';
import { checkShardRange, unmaskingMasks, type UnmaskShardInput } from './unmask.js';
import type { UnmaskJob, UnmaskJobResult } from './unmask-worker.js';

/** Options of an UnmaskPool. */
export interface UnmaskPoolOptions {
  /** Threads that share a shard, the calling thread included (default: the available parallelism). */
  readonly threads?: number;
  /**
   * Least work, in words times masks, worth splitting (default 2^22): below it the calling thread
   * unmasks alone, since a job costs a copy of its words and a message each way.
   */
  readonly minParallelWork?: number;
}

interface Pending {
  readonly resolve: (words: Uint32Array) => void;
  readonly reject: (e: Error) => void;
}

/** One worker thread and the jobs it has not answered yet. */
class PoolThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private dead: Error | undefined;

  constructor() {
    // The thread needs none of the process's flags, and some (--input-type, preloads) would
    // break or slow its start.
    this.worker = new Worker(new URL('./unmask-worker.js', import.meta.url), { execArgv: [] });
    // An idle pool must not keep the process alive; a busy one must, until its jobs answer.
    this.worker.unref();
    this.worker.on('message', (r: UnmaskJobResult) => {
      const p = this.pending.get(r.id);
      if (p === undefined) return;
      this.pending.delete(r.id);
      if (this.pending.size === 0) this.worker.unref();
      if ('error' in r) p.reject(invalidArgument(r.error));
      else p.resolve(r.words);
    });
    this.worker.on('error', (e: Error) => this.failAll(e));
    this.worker.on('exit', (code) => this.failAll(new Error(`the unmasking thread exited with code ${code}`)));
  }

  get alive(): boolean {
    return this.dead === undefined;
  }

  run(masks: readonly SignedSeed[], offset: number, words: Uint32Array): Promise<Uint32Array> {
    const id = this.nextId++;
    // Fresh copies of the seeds: a view would carry its whole underlying buffer to the thread.
    const job: UnmaskJob = { id, masks: masks.map((m) => ({ seed: new Uint8Array(m.seed), sign: m.sign })), offset, words };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage(job, [words.buffer as ArrayBuffer]);
    });
  }

  close(): Promise<number> {
    this.dead ??= new Error('the unmask pool was closed');
    return this.worker.terminate();
  }

  private failAll(cause: Error): void {
    this.dead ??= cause;
    const e = new FedmmError(
      'INTERNAL',
      `an unmasking thread failed: ${cause.message}; the shard sum is left partly unmasked, rebuild it from the survivors' inputs`,
    );
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

const DEFAULT_MIN_PARALLEL_WORK = 1 << 22;

/**
 * Worker threads that unmask one shard together with the calling thread: each thread generates
 * its own contiguous range of every mask stream (AES-CTR seeks by counter), so a shard's
 * unmasking runs about `threads` times faster on free cores. Threads start on first use, and an
 * idle pool does not keep the process alive.
 */
export class UnmaskPool {
  readonly threads: number;
  private readonly minParallelWork: number;
  private workers: PoolThread[] = [];
  private closed = false;

  constructor(options: UnmaskPoolOptions = {}) {
    const threads = options.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
      throw invalidArgument(`an unmask pool needs 1 to 256 threads, got ${threads}`);
    }
    const minWork = options.minParallelWork ?? DEFAULT_MIN_PARALLEL_WORK;
    if (!Number.isSafeInteger(minWork) || minWork < 0) {
      throw invalidArgument(`minParallelWork must be a non-negative integer, got ${minWork}`);
    }
    this.threads = threads;
    this.minParallelWork = minWork;
  }

  /**
   * `unmaskShard` with the range split over the pool's threads: the same words, in place. If a
   * thread fails, the sum is left partly unmasked.
   */
  async unmaskShard({ plan, maskedSum, offset }: UnmaskShardInput): Promise<Uint32Array> {
    if (this.closed) throw invalidArgument('this unmask pool is closed; create a new one');
    checkShardRange(plan, maskedSum.length, offset);
    const masks = unmaskingMasks(plan);
    const n = maskedSum.length;
    // Parts are whole AES blocks long, so no block is generated twice.
    const part = Math.ceil(n / this.threads / 4) * 4;
    if (this.threads === 1 || masks.length === 0 || n * masks.length < this.minParallelWork || part >= n) {
      applyMasks(maskedSum, masks, offset);
      return maskedSum;
    }
    const jobs: Promise<void>[] = [];
    for (let t = 1, at = part; at < n; t++, at += part) {
      const end = Math.min(n, at + part);
      const thread = this.thread(t - 1);
      const from = at;
      jobs.push(thread.run(masks, offset + from, maskedSum.slice(from, end)).then((words) => maskedSum.set(words, from)));
    }
    // The calling thread takes the first part while the others run; a thread that fails still
    // lets every other job settle before the error surfaces.
    let own: unknown;
    try {
      applyMasks(maskedSum.subarray(0, part), masks, offset);
    } catch (e) {
      own = e;
    }
    const settled = await Promise.allSettled(jobs);
    if (own !== undefined) throw own;
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    return maskedSum;
  }

  /** Stops the worker threads; the pool refuses further work. */
  async close(): Promise<void> {
    this.closed = true;
    const workers = this.workers;
    this.workers = [];
    await Promise.all(workers.map((w) => w.close()));
  }

  private thread(i: number): PoolThread {
    let w = this.workers[i];
    if (w === undefined || !w.alive) {
      w = new PoolThread();
      this.workers[i] = w;
    }
    return w;
  }
}
