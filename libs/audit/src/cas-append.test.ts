import assert from 'node:assert/strict';
import { test } from 'node:test';
import { appendWithCas, auditHeadKey, type HeadStore } from './cas-append.js';
import { appendRecord } from './record.js';
import { MemoryAuditSink } from './sink.js';
import { canonicalJson } from './canonical-json.js';
import { verifyChain } from './verify-chain.js';

/** A store whose reads yield to the event loop, so writers in "different processes" interleave. */
function racyStore(): HeadStore & { swaps: number; failures: number } {
  const data = new Map<string, string>();
  const tick = () => new Promise((r) => setImmediate(r));
  return {
    swaps: 0,
    failures: 0,
    async get(key) {
      await tick();
      return data.get(key) ?? null;
    },
    async compareAndSet(key, expected, next) {
      await tick();
      if ((data.get(key) ?? null) !== expected) {
        this.failures++;
        return false;
      }
      data.set(key, next);
      this.swaps++;
      return true;
    },
  };
}

test('writers racing on a shared head produce one unforked chain', async () => {
  const store = racyStore();
  const sink = new MemoryAuditSink();
  await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      appendWithCas(store, sink, { task: 'task-1', kind: 'update.received', actor: `worker-${i % 3}`, payload: { i } }, { maxAttempts: 64 }),
    ),
  );
  const records = await sink.list('task-1');
  assert.equal(records.length, 12);
  assert.equal(verifyChain(records).ok, true);
  assert.ok(store.failures > 0, 'the race should have made some compare-and-set fail');
});

test('a writer that died after winning the head is completed by the next writer', async () => {
  const store = racyStore();
  const sink = new MemoryAuditSink();
  await appendWithCas(store, sink, { task: 't', kind: 'task.created', actor: 'cli', payload: {} });
  // Simulate the crash: the head moves in the store but the record never reaches the sink.
  const [first] = await sink.list('t');
  const orphan = appendRecord(first ?? null, { task: 't', kind: 'terms.recorded', actor: 'cli', payload: { v: 1 } });
  assert.equal(await store.compareAndSet(auditHeadKey('t'), canonicalJson(first), canonicalJson(orphan)), true);
  await appendWithCas(store, sink, { task: 't', kind: 'round.opened', actor: 'aggregator', payload: {} });
  const records = await sink.list('t');
  assert.deepEqual(
    records.map((r) => r.kind),
    ['task.created', 'terms.recorded', 'round.opened'],
  );
  assert.equal(verifyChain(records).ok, true);
});
