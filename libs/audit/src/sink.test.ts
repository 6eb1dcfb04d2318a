import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AuditLog } from './audit-log.js';
import { JsonlFileAuditSink } from './jsonl-file-sink.js';
import { appendRecord } from './record.js';
import { type AuditSink, MemoryAuditSink } from './sink.js';
import { verifyChain } from './verify-chain.js';

// One contract suite, run against every sink implementation.
const implementations: { name: string; make: () => Promise<{ sink: AuditSink; reopen: () => AuditSink; done: () => Promise<void> }> }[] = [
  {
    name: 'memory',
    make: () => {
      const sink = new MemoryAuditSink();
      return Promise.resolve({ sink, reopen: () => sink, done: () => Promise.resolve() });
    },
  },
  {
    name: 'jsonl file',
    make: async () => {
      const dir = await mkdtemp(join(tmpdir(), 'fedmm-audit-'));
      return { sink: new JsonlFileAuditSink(dir), reopen: () => new JsonlFileAuditSink(dir), done: () => rm(dir, { recursive: true, force: true }) };
    },
  },
];

for (const impl of implementations) {
  test(`${impl.name} sink: concurrent appends never fork a chain`, async () => {
    const { sink, reopen, done } = await impl.make();
    try {
      const log = new AuditLog(sink);
      await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          log.append({ task: i % 2 === 0 ? 'task-a' : 'task-b', kind: 'update.received', actor: `company-${i}`, payload: { digest: `d${i}` } }),
        ),
      );
      for (const task of ['task-a', 'task-b']) {
        const records = await reopen().list(task);
        assert.equal(records.length, 20);
        assert.deepEqual(verifyChain(records, { task }).ok, true);
        assert.deepEqual(await log.verify(task), { ok: true, length: 20, headHash: records[19]?.hash });
      }
      // A new log over the reopened sink continues the same chain.
      const next = await new AuditLog(reopen()).append({ task: 'task-a', kind: 'round.sealed', actor: 'aggregator', payload: {} });
      assert.equal(next.seq, 21);
    } finally {
      await done();
    }
  });

  test(`${impl.name} sink: appends are idempotent and a competing record is refused`, async () => {
    const { sink, done } = await impl.make();
    try {
      const first = appendRecord(null, { task: 't', kind: 'task.created', actor: 'cli', payload: {} });
      await sink.append(first);
      await sink.append(first);
      assert.equal((await sink.list('t')).length, 1);
      const rival = appendRecord(null, { task: 't', kind: 'task.created', actor: 'other', payload: {} });
      await assert.rejects(sink.append(rival), /already exists with a different hash/);
      const skip = appendRecord({ seq: 5, hash: first.hash }, { task: 't', kind: 'round.opened', actor: 'x', payload: {} });
      await assert.rejects(sink.append(skip), /does not extend the chain/);
    } finally {
      await done();
    }
  });
}

test('the file sink refuses task ids that could escape its directory', () => {
  assert.throws(() => new JsonlFileAuditSink('/tmp').pathOf('../etc/passwd'), /cannot name an audit file/);
});
