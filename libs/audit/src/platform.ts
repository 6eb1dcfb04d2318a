import { aborted, dataLoss, invalidArgument } from '@fedmm/core';
import { Topics, type Bus } from '@fedmm/bus';
import { storeKey, type Store } from '@fedmm/store';
import { fedmmMetrics } from '@fedmm/telemetry';
import { KeyedMutex } from './audit-log.js';
import { auditHeadKey, type HeadStore } from './cas-append.js';
import { canonicalJson, type JsonValue } from './canonical-json.js';
import { type AuditInput, type AuditRecord, GENESIS_HASH, isAuditKind, AUDIT_KINDS, appendRecord } from './record.js';
import type { AuditSink } from './sink.js';
import { type ChainVerification, isRecordShape, verifyChain } from './verify-chain.js';

/** Digits of the zero-padded seq in a record's store key, so that keys sort in chain order. */
const SEQ_DIGITS = 12;

/** The store key of one mirrored record: `fedmm:audit:<task>:<seq padded>`. */
export function auditRecordKey(task: string, seq: number): string {
  return storeKey('audit', task, String(seq).padStart(SEQ_DIGITS, '0'));
}

/** The prefix under which a task's records are mirrored. */
export function auditRecordPrefix(task: string): string {
  return `${storeKey('audit', task)}:`;
}

/** The chain head on the store port: the head record's canonical JSON, swapped by version compare-and-set. */
export class StoreHeadStore implements HeadStore {
  constructor(private readonly store: Store) {}

  async get(key: string): Promise<string | null> {
    return (await this.store.get(key))?.value ?? null;
  }

  async compareAndSet(key: string, expected: string | null, next: string): Promise<boolean> {
    const entry = await this.store.get(key);
    if ((entry?.value ?? null) !== expected) return false;
    // The version, not the text, makes the swap atomic: a concurrent writer bumps it.
    return (await this.store.compareAndSet(key, entry?.version ?? 0, next)) !== undefined;
  }
}

/**
 * The store mirror of the audit trail: one key per record, created with compare-and-set so that
 * a seq is taken once. Appending the same record again is a no-op; another record with a taken
 * seq, or one that does not link to its predecessor, is refused (ABORTED).
 */
export class StoreAuditSink implements AuditSink {
  constructor(private readonly store: Store) {}

  /** Appends and tells whether the record was new (false: it was already there). */
  async add(record: AuditRecord): Promise<boolean> {
    if (record.seq > 1) {
      const prev = await this.#read(record.task, record.seq - 1);
      if (!prev || prev.hash !== record.prevHash) {
        throw aborted(
          `audit record ${record.seq} of task ${record.task} does not extend the chain (record ${record.seq - 1} is ${prev ? 'another one' : 'missing'}); re-read the head and retry`,
        );
      }
    } else if (record.prevHash !== GENESIS_HASH) {
      throw aborted(`audit record 1 of task ${record.task} does not extend the chain: its prevHash is not the genesis hash`);
    }
    const key = auditRecordKey(record.task, record.seq);
    if ((await this.store.compareAndSet(key, 0, canonicalJson(record))) !== undefined) return true;
    const existing = await this.#read(record.task, record.seq);
    if (existing?.hash === record.hash) return false;
    throw aborted(
      `audit record ${record.seq} of task ${record.task} already exists with a different hash; another writer appended first, re-read the head and retry`,
    );
  }

  async append(record: AuditRecord): Promise<void> {
    await this.add(record);
  }

  /** Whether the mirror holds this exact record. */
  async has(record: AuditRecord): Promise<boolean> {
    return (await this.#read(record.task, record.seq))?.hash === record.hash;
  }

  async list(task: string): Promise<AuditRecord[]> {
    const entries = await this.store.list(auditRecordPrefix(task));
    const out: AuditRecord[] = [];
    for (const e of entries) {
      const suffix = e.key.slice(auditRecordPrefix(task).length);
      // A task id may itself prefix another's ("a" and "a:b" cannot occur, but "head" can collide).
      if (!/^\d+$/.test(suffix)) continue;
      const r = parseRecord(e.value, e.key);
      if (r.task === task) out.push(r);
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  async #read(task: string, seq: number): Promise<AuditRecord | undefined> {
    const key = auditRecordKey(task, seq);
    const e = await this.store.get(key);
    return e ? parseRecord(e.value, key) : undefined;
  }
}

/**
 * The platform's audit sink: a record goes to the fedmm.audit topic (key: task) and then into the
 * store mirror. Publishing first means a crash between the two leaves a duplicate on the topic
 * (consumers drop repeated hashes), never a gap; the next append re-publishes a head that the
 * mirror lacks.
 */
export class PlatformAuditSink implements AuditSink {
  readonly mirror: StoreAuditSink;

  constructor(
    store: Store,
    private readonly bus?: Bus,
    private readonly topic: string = Topics.audit,
  ) {
    this.mirror = new StoreAuditSink(store);
  }

  async append(record: AuditRecord): Promise<void> {
    if (await this.mirror.has(record)) return;
    if (this.bus) {
      await this.bus.publish(this.topic, [
        {
          key: record.task,
          value: Buffer.from(canonicalJson(record), 'utf8'),
          headers: { 'fedmm-task': record.task, 'fedmm-seq': String(record.seq), 'fedmm-hash': record.hash, 'fedmm-kind': record.kind },
        },
      ]);
    }
    await this.mirror.add(record);
  }

  list(task: string): Promise<AuditRecord[]> {
    return this.mirror.list(task);
  }
}

export interface PlatformAuditLogOptions {
  readonly store: Store;
  /** Where records are published; without a bus they only reach the store mirror. */
  readonly bus?: Bus;
  readonly topic?: string;
  readonly clock?: () => Date;
  /** Compare-and-set attempts per append under contention. Default 100. */
  readonly maxAttempts?: number;
  /** How long to wait for another writer to finish publishing the head before completing it. Default 2000 ms. */
  readonly recoveryGraceMs?: number;
}

/**
 * The audit trail as platform services write it: appends from any number of processes land on
 * one chain per task (the head is swapped with compare-and-set in the store), each record is
 * published to fedmm.audit and mirrored under `fedmm:audit:<task>:<seq>`. Its `append(taskId,
 * kind, payload, actor)` is the aggregator's AuditPort.
 */
export class PlatformAuditLog {
  readonly sink: PlatformAuditSink;
  readonly #heads: StoreHeadStore;
  readonly #mutex = new KeyedMutex();
  readonly #options: PlatformAuditLogOptions;
  #topicReady: Promise<void> | undefined;

  constructor(options: PlatformAuditLogOptions) {
    this.#options = options;
    this.sink = new PlatformAuditSink(options.store, options.bus, options.topic ?? Topics.audit);
    this.#heads = new StoreHeadStore(options.store);
  }

  /** Appends one event; `payload` is made plain JSON first (undefined fields dropped). */
  async append(taskId: string, kind: string, payload: Record<string, unknown>, actor: string): Promise<AuditRecord> {
    if (!isAuditKind(kind)) throw invalidArgument(`unknown audit kind ${JSON.stringify(kind)}; use one of ${AUDIT_KINDS.join(', ')}`);
    return this.appendInput({ task: taskId, kind, actor, payload: plainJson(payload, kind) });
  }

  /** Appends a prepared input (see termsRecordedInput, termsAcceptedInput). */
  appendInput(input: AuditInput): Promise<AuditRecord> {
    // One append at a time per task in this process keeps compare-and-set failures for real races.
    return this.#mutex.run(input.task, async () => {
      await this.#ensureTopic();
      const record = await this.#appendAcrossProcesses(input);
      fedmmMetrics().auditChainLength.set(record.seq, { task: record.task });
      return record;
    });
  }

  /**
   * The head record lives at auditHeadKey(task) (the layout appendWithCas uses, so both kinds of
   * writer share one chain) and is swapped by version compare-and-set; only the winner publishes.
   * A head the mirror lacks belongs to a writer that is publishing right now or died doing so:
   * wait a moment for it, then complete it ourselves (a duplicate on the topic at worst, never a gap).
   */
  async #appendAcrossProcesses(input: AuditInput): Promise<AuditRecord> {
    const { store } = this.#options;
    const key = auditHeadKey(input.task);
    const attempts = this.#options.maxAttempts ?? 100;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const entry = await store.get(key);
      const head = entry ? parseRecord(entry.value, key) : null;
      if (head && !(await this.#settled(head))) await this.sink.append(head);
      const record = appendRecord(head, { ...input, at: input.at ?? (this.#options.clock ?? (() => new Date()))() });
      if ((await store.compareAndSet(key, entry?.version ?? 0, canonicalJson(record))) !== undefined) {
        await this.sink.append(record);
        return record;
      }
    }
    throw aborted(`could not append to the audit chain of task ${input.task} after ${attempts} attempts under contention; retry later`);
  }

  /** Whether the mirror holds the head, waiting up to the grace period for its writer to finish. */
  async #settled(head: AuditRecord): Promise<boolean> {
    const deadline = Date.now() + (this.#options.recoveryGraceMs ?? 2000);
    for (let delay = 2; ; delay = Math.min(delay * 2, 100)) {
      if (await this.sink.mirror.has(head)) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  /** The task's records in chain order, from the store mirror. */
  list(task: string): Promise<AuditRecord[]> {
    return this.sink.list(task);
  }

  /** Recomputes the task's chain from the mirror and checks it ends at the head the store holds. */
  async verify(task: string): Promise<ChainVerification> {
    const records = await this.sink.list(task);
    const headText = await this.#heads.get(auditHeadKey(task));
    const head = headText === null ? null : parseRecord(headText, auditHeadKey(task));
    return verifyChain(records, { task, ...(head ? { expectedHead: { seq: head.seq, hash: head.hash } } : {}) });
  }

  #ensureTopic(): Promise<void> {
    const bus = this.#options.bus;
    if (!bus) return Promise.resolve();
    // Deployments create the topic; a failure here (another writer creating it at the same moment,
    // no admin rights) must not stop the trail, and a missing topic still fails the publish.
    this.#topicReady ??= bus.ensureTopic(this.#options.topic ?? Topics.audit, { partitions: 4 }).catch(() => undefined);
    return this.#topicReady;
  }
}

/** A payload as canonical JSON accepts it: undefined fields dropped, Dates as ISO strings, bigints as decimal strings. */
function plainJson(payload: Record<string, unknown>, kind: string): { [key: string]: JsonValue } {
  let text: string | undefined;
  try {
    text = JSON.stringify(payload, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch (e) {
    throw invalidArgument(`payload of audit event ${kind} is not JSON-serialisable (${(e as Error).message}); pass plain data`);
  }
  const parsed = text === undefined ? undefined : (JSON.parse(text) as unknown);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw invalidArgument(`payload of audit event ${kind} must be a JSON object`);
  }
  return parsed as { [key: string]: JsonValue };
}

function parseRecord(text: string, key: string): AuditRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!isRecordShape(parsed)) throw dataLoss(`store key ${key} does not hold an audit record; restore it from the fedmm.audit topic`);
  return parsed;
}
