import { aborted, dataLoss } from '@fedmm/core';
import { canonicalJson } from './canonical-json.js';
import { appendRecord, type AuditInput, type AuditRecord } from './record.js';
import type { AuditSink } from './sink.js';
import { isRecordShape } from './verify-chain.js';

/** The minimal slice of the store port that a shared chain head needs. */
export interface HeadStore {
  get(key: string): Promise<string | null>;
  /** Sets key to next only if it currently holds expected (null: absent); resolves whether it did. */
  compareAndSet(key: string, expected: string | null, next: string): Promise<boolean>;
}

/** The store key holding a task's head record. */
export function auditHeadKey(task: string): string {
  return `fedmm:audit:head:${task}`;
}

export interface CasAppendOptions {
  /** Attempts before giving up under contention. Default 16. */
  readonly maxAttempts?: number;
  readonly clock?: () => Date;
}

/**
 * Appends across processes without forking the chain: the head record itself is swapped in the
 * store with compare-and-set, and only the winner publishes to the sink. Before building on a
 * head the head is re-published (sinks are idempotent), so a writer that died between winning
 * the swap and publishing loses nothing.
 */
export async function appendWithCas(
  store: HeadStore,
  sink: AuditSink,
  input: AuditInput,
  options: CasAppendOptions = {},
): Promise<AuditRecord> {
  const key = auditHeadKey(input.task);
  const attempts = options.maxAttempts ?? 16;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const current = await store.get(key);
    const head = current === null ? null : parseHead(current, key);
    if (head) await sink.append(head);
    const record = appendRecord(head, { ...input, at: input.at ?? (options.clock ?? (() => new Date()))() });
    if (await store.compareAndSet(key, current, canonicalJson(record))) {
      await sink.append(record);
      return record;
    }
  }
  throw aborted(`could not append to the audit chain of task ${input.task} after ${attempts} attempts under contention; retry later`);
}

function parseHead(text: string, key: string): AuditRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!isRecordShape(parsed)) throw dataLoss(`store key ${key} does not hold an audit record; restore it from the audit sink`);
  return parsed;
}
