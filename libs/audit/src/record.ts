import { createHash } from 'node:crypto';
import { invalidArgument } from '@fedmm/core';
import { canonicalJson, type JsonValue } from './canonical-json.js';

/** Every event the platform records, in the order of a task's life. */
export const AUDIT_KINDS = [
  'task.created',
  'terms.recorded',
  'terms.accepted',
  'member.joined',
  'round.opened',
  'round.selection',
  'update.received',
  'budget.reserved',
  'budget.committed',
  'budget.released',
  'round.sealed',
  'aggregation.result',
  'contribution.recorded',
  'reward.assigned',
  'version.published',
  'round.failed',
  'task.closed',
] as const;

export type AuditKind = (typeof AUDIT_KINDS)[number];

const KINDS: ReadonlySet<string> = new Set(AUDIT_KINDS);

/** Whether a string names a known audit kind. */
export function isAuditKind(kind: string): kind is AuditKind {
  return KINDS.has(kind);
}

/** prevHash of the first record of a task. */
export const GENESIS_HASH = '0'.repeat(64);

/** One link of a task's hash chain. `hash` is sha256 over the canonical JSON of every other field. */
export interface AuditRecord {
  /** 1 for the first record of the task, then +1 per record. */
  readonly seq: number;
  readonly task: string;
  readonly kind: AuditKind;
  /** ISO-8601 UTC time of the append. */
  readonly at: string;
  /** Who caused the event: a service name or a company (tenant) id. */
  readonly actor: string;
  readonly payload: { readonly [key: string]: JsonValue };
  readonly prevHash: string;
  readonly hash: string;
}

/** What a caller supplies; the chain fields are filled in by appendRecord. */
export interface AuditInput {
  readonly task: string;
  readonly kind: AuditKind;
  readonly actor: string;
  readonly payload: { readonly [key: string]: JsonValue };
  /** Defaults to now. */
  readonly at?: Date | string;
}

/** The head of a chain: what the next record links to. */
export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

/** sha256 (hex) over the canonical JSON of a record without its own hash. */
export function recordHash(record: Omit<AuditRecord, 'hash'>): string {
  const body = {
    seq: record.seq,
    task: record.task,
    kind: record.kind,
    at: record.at,
    actor: record.actor,
    payload: record.payload,
    prevHash: record.prevHash,
  };
  return createHash('sha256').update(canonicalJson(body), 'utf8').digest('hex');
}

/** The next record of a chain whose last record (or head) is `prev` (null for a new task). */
export function appendRecord(prev: ChainHead | AuditRecord | null, input: AuditInput): AuditRecord {
  validateInput(input);
  if (prev && 'task' in prev && prev.task !== input.task) {
    throw invalidArgument(`cannot chain a record of task ${input.task} onto the chain of task ${prev.task}`);
  }
  const at = input.at === undefined ? new Date().toISOString() : typeof input.at === 'string' ? input.at : input.at.toISOString();
  if (Number.isNaN(Date.parse(at))) throw invalidArgument(`record time ${JSON.stringify(at)} is not an ISO-8601 date`);
  const body = {
    seq: prev ? prev.seq + 1 : 1,
    task: input.task,
    kind: input.kind,
    at,
    actor: input.actor,
    payload: input.payload,
    prevHash: prev ? prev.hash : GENESIS_HASH,
  };
  return Object.freeze({ ...body, hash: recordHash(body) });
}

function validateInput(input: AuditInput): void {
  if (typeof input.task !== 'string' || input.task.length === 0) throw invalidArgument('audit record needs a task id');
  if (!isAuditKind(input.kind)) {
    throw invalidArgument(`unknown audit kind ${JSON.stringify(input.kind)}; use one of ${AUDIT_KINDS.join(', ')}`);
  }
  if (typeof input.actor !== 'string' || input.actor.length === 0) throw invalidArgument('audit record needs an actor');
  if (input.payload === null || typeof input.payload !== 'object' || Array.isArray(input.payload)) {
    throw invalidArgument('audit payload must be a JSON object');
  }
  canonicalJson(input.payload);
}
