import assert from 'node:assert/strict';
import { test } from 'node:test';
import { appendRecord, type AuditKind, type AuditRecord, recordHash } from './record.js';
import { type TamperKind, verifyChain, type VerifyOptions } from './verify-chain.js';

const KINDS: AuditKind[] = ['task.created', 'terms.recorded', 'round.opened', 'round.selection', 'update.received', 'budget.reserved', 'aggregation.result', 'version.published'];

function chain(task = 'task-1'): AuditRecord[] {
  const out: AuditRecord[] = [];
  KINDS.forEach((kind, i) => {
    out.push(appendRecord(out[out.length - 1] ?? null, { task, kind, actor: 'aggregator', payload: { i }, at: new Date(Date.UTC(2025, 0, 1, 0, i)) }));
  });
  return out;
}

const rehash = (r: Omit<AuditRecord, 'hash'>): AuditRecord => ({ ...r, hash: recordHash(r) });
const head = (c: readonly AuditRecord[]) => ({ seq: c.length, hash: c[c.length - 1]?.hash ?? '' });

function expectBad(records: readonly unknown[], problem: TamperKind, firstBadSeq: number, options?: VerifyOptions): void {
  const r = verifyChain(records, options);
  assert.equal(r.ok, false, 'tampering went unnoticed');
  if (r.ok) return;
  assert.equal(r.problem, problem, r.message);
  assert.equal(r.firstBadSeq, firstBadSeq, r.message);
}

test('an intact chain verifies and reports its head', () => {
  const c = chain();
  assert.deepEqual(verifyChain(c, { expectedHead: head(c) }), { ok: true, length: 8, headHash: c[7]?.hash });
  assert.equal(verifyChain([]).ok, true);
});

test('a changed record is located, whether or not its hash was recomputed', () => {
  const c = chain();
  const edited = c.slice();
  edited[3] = { ...(c[3] as AuditRecord), payload: { i: 99 } };
  expectBad(edited, 'changed', 4);
  const rehashed = c.slice();
  rehashed[3] = rehash({ ...(c[3] as AuditRecord), actor: 'mallory' });
  expectBad(rehashed, 'changed', 4);
  const lastRehashed = c.slice();
  lastRehashed[7] = rehash({ ...(c[7] as AuditRecord), payload: { i: 7, extra: true } });
  expectBad(lastRehashed, 'changed', 1, { expectedHead: head(c) });
  expectBad(lastRehashed, 'changed', 7, { expectedHead: head(c), anchors: [{ seq: 6, hash: c[5]?.hash ?? '' }] });
  const garbled: unknown[] = c.slice();
  garbled[2] = { seq: 3, note: 'not a record' };
  expectBad(garbled, 'changed', 3);
});

test('a removed record is located, in the middle, renumbered, or at the end', () => {
  const c = chain();
  expectBad([...c.slice(0, 4), ...c.slice(5)], 'removed', 5);
  expectBad([...c.slice(0, 4), ...c.slice(6)], 'removed', 5);
  const renumbered = [...c.slice(0, 4), ...c.slice(5).map((r) => ({ ...r, seq: r.seq - 1 }))];
  expectBad(renumbered, 'removed', 5);
  expectBad(c.slice(0, 6), 'removed', 7, { expectedHead: head(c) });
  expectBad(c.slice(1), 'removed', 1);
});

test('reordered records are located', () => {
  const c = chain();
  const swapped = c.slice();
  [swapped[2], swapped[3]] = [c[3] as AuditRecord, c[2] as AuditRecord];
  expectBad(swapped, 'reordered', 3);
  expectBad([...c.slice(0, 5), ...c.slice(6), c[5]], 'reordered', 6);
});

test('inserted records are located, however they are numbered', () => {
  const c = chain();
  // A forged record that links correctly and takes seq 4, before the real record 4.
  const forged = appendRecord(c[2] as AuditRecord, { task: 'task-1', kind: 'update.received', actor: 'mallory', payload: { digest: 'ff' }, at: '2025-01-01T00:03:30Z' });
  expectBad([...c.slice(0, 3), forged, ...c.slice(3)], 'inserted', 4);
  // The same, with the real records renumbered after it.
  expectBad([...c.slice(0, 3), forged, ...c.slice(3).map((r) => ({ ...r, seq: r.seq + 1 }))], 'inserted', 4);
  // A replayed copy of an earlier record.
  expectBad([...c.slice(0, 5), c[1], ...c.slice(5)], 'inserted', 2);
  // A record with an invented seq number.
  expectBad([...c.slice(0, 3), { ...forged, seq: 42 }, ...c.slice(3)], 'inserted', 42);
  // A record of another task.
  expectBad([...c.slice(0, 3), { ...forged, task: 'task-2' }, ...c.slice(3)], 'inserted', 4);
  // Appended after the head, with a valid link: only the independently known head reveals it.
  const appended = appendRecord(c[7] as AuditRecord, { task: 'task-1', kind: 'version.published', actor: 'mallory', payload: {} });
  assert.equal(verifyChain([...c, appended]).ok, true);
  expectBad([...c, appended], 'inserted', 9, { expectedHead: head(c) });
});

test('compound tampering (insert, relink and rehash a neighbour) is still detected', () => {
  const c = chain();
  const forged = rehash({ seq: 4, task: 'task-1', kind: 'budget.committed', at: '2025-01-01T00:03:30Z', actor: 'mallory', payload: {}, prevHash: c[2]?.hash ?? '' });
  const next = rehash({ ...(c[3] as AuditRecord), seq: 5, prevHash: forged.hash });
  const r = verifyChain([...c.slice(0, 3), forged, next, ...c.slice(4)]);
  assert.equal(r.ok, false);
  assert.ok(!r.ok && r.firstBadSeq <= 5, JSON.stringify(r));
});
