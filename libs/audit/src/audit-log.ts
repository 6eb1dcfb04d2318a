import { appendRecord, type AuditInput, type AuditRecord } from './record.js';
import type { AuditSink } from './sink.js';
import { type ChainVerification, verifyChain } from './verify-chain.js';

/** Serializes async work per key: one task's appends never interleave, other tasks run freely. */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const tail = this.#tails.get(key) ?? Promise.resolve();
    const result = tail.then(work, work);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, settled);
    void settled.then(() => {
      if (this.#tails.get(key) === settled) this.#tails.delete(key);
    });
    return result;
  }
}

export interface AuditLogOptions {
  /** Source of record times. Default: the system clock. */
  readonly clock?: () => Date;
}

/**
 * Appends records to a task's chain through one sink, one append at a time per task, so the chain
 * never forks inside this process. Across processes use appendWithCas on a shared head.
 */
export class AuditLog {
  readonly #sink: AuditSink;
  readonly #clock: () => Date;
  readonly #mutex = new KeyedMutex();
  readonly #heads = new Map<string, AuditRecord | null>();

  constructor(sink: AuditSink, options: AuditLogOptions = {}) {
    this.#sink = sink;
    this.#clock = options.clock ?? (() => new Date());
  }

  /** Appends one record and resolves once the sink holds it. */
  append(input: AuditInput): Promise<AuditRecord> {
    return this.#mutex.run(input.task, async () => {
      const prev = await this.#head(input.task);
      const record = appendRecord(prev, { ...input, at: input.at ?? this.#clock() });
      try {
        await this.#sink.append(record);
      } catch (e) {
        // Another writer may have moved the head; re-read it on the next append.
        this.#heads.delete(input.task);
        throw e;
      }
      this.#heads.set(input.task, record);
      return record;
    });
  }

  /** The task's records in order. */
  list(task: string): Promise<AuditRecord[]> {
    return this.#sink.list(task);
  }

  /** Recomputes the task's chain from the sink. */
  async verify(task: string): Promise<ChainVerification> {
    return verifyChain(await this.#sink.list(task), { task });
  }

  async #head(task: string): Promise<AuditRecord | null> {
    if (this.#heads.has(task)) return this.#heads.get(task) ?? null;
    const records = await this.#sink.list(task);
    const head = records[records.length - 1] ?? null;
    this.#heads.set(task, head);
    return head;
  }
}
