import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AuditLog } from './audit-log.js';
import { appendRecord } from './record.js';
import type { AuditSink } from './sink.js';
import { verifyChain } from './verify-chain.js';

/** A sink under test: `reopen` gives a second view of the same storage (a restart, another process). */
export interface AuditSinkHarness {
  readonly sink: AuditSink;
  reopen(): AuditSink;
  done(): Promise<void>;
}

/** The behaviour every AuditSink must have; registers node:test tests named after the implementation. */
export function runAuditSinkContract(name: string, make: (prefix: string) => Promise<AuditSinkHarness>): void {
  // Unique task ids per run, so sinks on shared servers (Redis) never see an earlier run's chains.
  const run = `${Date.now().toString(36)}${Math.floor(performance.now() * 1000).toString(36)}`;

  void test(`${name} sink: concurrent appends never fork a chain`, async () => {
    const { sink, reopen, done } = await make(run);
    const [a, b] = [`task-a-${run}`, `task-b-${run}`];
    try {
      const log = new AuditLog(sink);
      await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          log.append({ task: i % 2 === 0 ? a : b, kind: 'update.received', actor: `company-${i}`, payload: { digest: `d${i}` } }),
        ),
      );
      for (const task of [a, b]) {
        const records = await reopen().list(task);
        assert.equal(records.length, 20);
        assert.deepEqual(verifyChain(records, { task }).ok, true);
        assert.deepEqual(await log.verify(task), { ok: true, length: 20, headHash: records[19]?.hash });
      }
      // A new log over the reopened sink continues the same chain.
      const next = await new AuditLog(reopen()).append({ task: a, kind: 'round.sealed', actor: 'aggregator', payload: {} });
      assert.equal(next.seq, 21);
    } finally {
      await done();
    }
  });

  void test(`${name} sink: appends are idempotent and a competing record is refused`, async () => {
    const { sink, done } = await make(run);
    const t = `t-${run}`;
    try {
      const first = appendRecord(null, { task: t, kind: 'task.created', actor: 'cli', payload: {} });
      await sink.append(first);
      await sink.append(first);
      assert.equal((await sink.list(t)).length, 1);
      const rival = appendRecord(null, { task: t, kind: 'task.created', actor: 'other', payload: {} });
      await assert.rejects(sink.append(rival), /already exists with a different hash/);
      const skip = appendRecord({ seq: 5, hash: first.hash }, { task: t, kind: 'round.opened', actor: 'x', payload: {} });
      await assert.rejects(sink.append(skip), /does not extend the chain/);
      assert.equal((await sink.list(t)).length, 1);
    } finally {
      await done();
    }
  });
}
