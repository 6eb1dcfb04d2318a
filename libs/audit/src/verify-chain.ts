import { type AuditRecord, type ChainHead, GENESIS_HASH, isAuditKind, recordHash } from './record.js';

/** The kinds of tampering verification names. */
export type TamperKind = 'changed' | 'removed' | 'reordered' | 'inserted';

/** The outcome of verifying a chain: intact with its head, or the first bad record located. */
export type ChainVerification =
  | { readonly ok: true; readonly length: number; readonly headHash: string }
  | {
      readonly ok: false;
      /** The seq of the first record that was changed, removed, reordered or inserted. */
      readonly firstBadSeq: number;
      /** 1-based position in the list as given where the problem shows. */
      readonly position: number;
      readonly problem: TamperKind;
      readonly message: string;
    };

export interface VerifyOptions {
  /** The task every record must belong to. Default: the first record's. */
  readonly task?: string;
  /** A head obtained independently (store, export header, a receipt): catches removal or rewriting at the end. */
  readonly expectedHead?: ChainHead;
  /** Known-good (seq, hash) pairs, e.g. heads given to companies as receipts: bound where a fully rewritten suffix starts. */
  readonly anchors?: readonly ChainHead[];
}

/**
 * Recomputes a task's chain and names the first record that was changed, removed, reordered or
 * inserted. Sequence numbers locate gaps and moves; recomputed hashes catch edited records;
 * prevHash links catch records edited together with their own hash, and inserted ones.
 */
export function verifyChain(records: readonly unknown[], options: VerifyOptions = {}): ChainVerification {
  const task = options.task ?? (isRecordShape(records[0]) ? records[0].task : undefined);
  const hashAt: string[] = [];
  const positionOfHash = new Map<string, number>();
  const bySeq = new Map<number, AuditRecord>();
  let prev = GENESIS_HASH;
  let expected = 1;
  for (let i = 0; i < records.length; i++) {
    const raw = records[i];
    const pos = i + 1;
    if (!isRecordShape(raw)) {
      return bad(expected, pos, 'changed', `the record at position ${pos} is not a well-formed audit record (expected seq ${expected})`);
    }
    const r = raw;
    if (r.task !== task) {
      return bad(r.seq, pos, 'inserted', `the record at position ${pos} belongs to task ${r.task}, not ${String(task)}`);
    }
    const selfConsistent = safeHash(r) === r.hash;
    if (r.seq > expected) {
      const later = findIndexFrom(records, i + 1, (x) => x.seq === expected);
      if (later >= 0) {
        const linksForward = findIndexFrom(records, i + 1, (x) => x.hash === r.prevHash && x.seq === r.seq - 1) >= 0;
        if (selfConsistent && linksForward) {
          return bad(expected, pos, 'reordered', `record ${expected} appears at position ${later + 1}, after record ${r.seq} at position ${pos}`);
        }
        return bad(r.seq, pos, 'inserted', `the record at position ${pos} claims seq ${r.seq} but does not belong between record ${expected - 1} and record ${expected}`);
      }
      const missing = r.seq - 1 === expected ? `record ${expected} is` : `records ${expected} to ${r.seq - 1} are`;
      return bad(expected, pos, 'removed', `${missing} missing: record ${r.seq} follows record ${expected - 1}`);
    }
    if (r.seq < expected) {
      const earlier = bySeq.get(r.seq);
      if (earlier && earlier.hash === r.hash) {
        return bad(r.seq, pos, 'inserted', `the record at position ${pos} is a second copy of record ${r.seq}`);
      }
      const previous = records[i - 1];
      if (selfConsistent && r.seq === expected - 1 && isRecordShape(previous) && previous.prevHash === r.prevHash) {
        const next = records[i + 1];
        if (isRecordShape(next) && next.prevHash === r.hash) {
          return bad(r.seq, pos - 1, 'inserted', `the record at position ${pos - 1} was inserted: record ${r.seq + 1} links to the record ${r.seq} at position ${pos}`);
        }
      }
      return bad(r.seq, pos, 'inserted', `the record at position ${pos} claims seq ${r.seq}, which record at position ${positionOfSeq(bySeq, hashAt, r.seq)} already holds`);
    }
    if (!selfConsistent) {
      if (r.seq > 1 && safeHash({ ...r, seq: r.seq - 1 }) === r.hash) {
        return bad(r.seq - 1, pos - 1, 'inserted', `the record at position ${pos - 1} was inserted: the records after it were renumbered (record at position ${pos} was seq ${r.seq - 1})`);
      }
      if (safeHash({ ...r, seq: r.seq + 1 }) === r.hash) {
        return bad(r.seq, pos, 'removed', `record ${r.seq} was removed and the records after it renumbered (record at position ${pos} was seq ${r.seq + 1})`);
      }
      return bad(r.seq, pos, 'changed', `record ${r.seq} was changed: its content no longer matches its hash`);
    }
    if (r.prevHash !== prev) {
      const target = positionOfHash.get(r.prevHash);
      if (target !== undefined) {
        const first = records[target] as AuditRecord;
        return bad(first.seq, target + 1, 'inserted', `records at positions ${target + 1} to ${i} were inserted: record at position ${pos} links to the record at position ${target}`);
      }
      if (r.seq === 1) return bad(1, pos, 'changed', 'record 1 was changed: it does not start the chain');
      return bad(r.seq - 1, pos - 1, 'changed', `record ${r.seq - 1} was changed (content and hash rewritten): record ${r.seq} was chained to a different record ${r.seq - 1}, or records were removed there and the rest renumbered`);
    }
    hashAt.push(r.hash);
    positionOfHash.set(r.hash, i);
    bySeq.set(r.seq, r);
    prev = r.hash;
    expected++;
  }
  const length = expected - 1;
  const anchors = [...(options.anchors ?? [])].sort((a, b) => a.seq - b.seq);
  let lastGood = 0;
  for (const anchor of anchors) {
    if (anchor.seq > length) {
      return bad(length + 1, length + 1, 'removed', `the chain ends at record ${length} but a receipt names record ${anchor.seq}: records from ${length + 1} were removed`);
    }
    if (hashAt[anchor.seq - 1] !== anchor.hash) {
      return bad(lastGood + 1, lastGood + 1, 'changed', `record ${anchor.seq} differs from its receipt: the chain was rewritten from somewhere in records ${lastGood + 1} to ${anchor.seq}`);
    }
    lastGood = anchor.seq;
  }
  const head = options.expectedHead;
  if (head) {
    if (length < head.seq) {
      return bad(length + 1, length + 1, 'removed', `the chain ends at record ${length} but its head is record ${head.seq}: records ${length + 1} to ${head.seq} were removed`);
    }
    if (length > head.seq) {
      return bad(head.seq + 1, head.seq + 1, 'inserted', `the chain has ${length} records but its head is record ${head.seq}: records from ${head.seq + 1} were appended`);
    }
    if (length > 0 && hashAt[length - 1] !== head.hash) {
      return bad(lastGood + 1, lastGood + 1, 'changed', `the last record differs from the expected head: the chain was rewritten from somewhere in records ${lastGood + 1} to ${length}; give anchors to narrow it`);
    }
  }
  return { ok: true, length, headHash: length > 0 ? (hashAt[length - 1] as string) : GENESIS_HASH };
}

/** A record whose payload cannot be serialized canonically has no valid hash at all. */
function safeHash(r: AuditRecord): string | undefined {
  try {
    return recordHash(r);
  } catch {
    return undefined;
  }
}

function bad(firstBadSeq: number, position: number, problem: TamperKind, message: string): ChainVerification {
  return { ok: false, firstBadSeq, position, problem, message };
}

function positionOfSeq(bySeq: ReadonlyMap<number, AuditRecord>, hashAt: readonly string[], seq: number): number {
  const r = bySeq.get(seq);
  return r ? hashAt.indexOf(r.hash) + 1 : 0;
}

function findIndexFrom(records: readonly unknown[], from: number, pred: (r: AuditRecord) => boolean): number {
  for (let j = from; j < records.length; j++) {
    const x = records[j];
    if (isRecordShape(x) && pred(x)) return j;
  }
  return -1;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Whether a parsed value has the shape of an audit record (types only; hashes are checked separately). */
export function isRecordShape(x: unknown): x is AuditRecord {
  if (x === null || typeof x !== 'object') return false;
  const r = x as Record<string, unknown>;
  return (
    Number.isInteger(r['seq']) &&
    (r['seq'] as number) >= 1 &&
    typeof r['task'] === 'string' &&
    typeof r['kind'] === 'string' &&
    isAuditKind(r['kind']) &&
    typeof r['at'] === 'string' &&
    typeof r['actor'] === 'string' &&
    r['payload'] !== null &&
    typeof r['payload'] === 'object' &&
    !Array.isArray(r['payload']) &&
    typeof r['prevHash'] === 'string' &&
    HEX64.test(r['prevHash']) &&
    typeof r['hash'] === 'string' &&
    HEX64.test(r['hash'])
  );
}
