import { aborted } from '@fedmm/core';
import type { AuditRecord } from './record.js';

/**
 * Where records go (the fedmm.audit topic, the store mirror, a file). append must be idempotent:
 * the same record again is a no-op; a different record with a seq already taken is refused.
 */
export interface AuditSink {
  append(record: AuditRecord): Promise<void>;
  /** The task's records in seq order. */
  list(task: string): Promise<AuditRecord[]>;
}

/** Checks that `record` extends `chain` (or repeats a record already in it); returns whether it is new. */
export function checkExtends(chain: readonly AuditRecord[], record: AuditRecord): boolean {
  const existing = chain[record.seq - 1];
  if (existing) {
    if (existing.hash === record.hash) return false;
    throw aborted(
      `audit record ${record.seq} of task ${record.task} already exists with a different hash; another writer appended first, re-read the head and retry`,
    );
  }
  const last = chain[chain.length - 1];
  if (record.seq !== chain.length + 1 || record.prevHash !== (last ? last.hash : record.prevHash)) {
    throw aborted(
      `audit record ${record.seq} of task ${record.task} does not extend the chain (head is ${chain.length}); re-read the head and retry`,
    );
  }
  return true;
}

/** An in-process sink, for tests and the embedded demo. */
export class MemoryAuditSink implements AuditSink {
  readonly #chains = new Map<string, AuditRecord[]>();

  // async so that a refused record rejects the promise instead of throwing at the call.
  async append(record: AuditRecord): Promise<void> {
    const chain = this.#chains.get(record.task) ?? [];
    if (checkExtends(chain, record)) chain.push(record);
    this.#chains.set(record.task, chain);
  }

  list(task: string): Promise<AuditRecord[]> {
    return Promise.resolve([...(this.#chains.get(task) ?? [])]);
  }
}
