import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { KafkaBus } from '@fedmm/bus';
import { RedisStore, SqliteStore, type Store } from '@fedmm/store';
import { appendRecord } from './record.js';
import { auditHeadKey } from './cas-append.js';
import { canonicalJson } from './canonical-json.js';
import { auditRecordKey, PlatformAuditLog, PlatformAuditSink, StoreAuditSink } from './platform.js';
import { runAuditSinkContract } from './sink-contract.js';
import { verifyChain } from './verify-chain.js';

const redisUrl = process.env['FEDMM_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const brokers = (process.env['FEDMM_KAFKA_BROKERS'] ?? '127.0.0.1:9092').split(',');
const unique = (): string => `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

const opened: Store[] = [];
after(async () => {
  await Promise.all(opened.map((s) => s.close()));
});
const redis = (): RedisStore => {
  const s = new RedisStore(redisUrl);
  opened.push(s);
  return s;
};

runAuditSinkContract('store mirror on redis', () => Promise.resolve({ sink: new StoreAuditSink(redis()), reopen: () => new StoreAuditSink(redis()), done: () => Promise.resolve() }));

runAuditSinkContract('store mirror on sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fedmm-audit-sqlite-'));
  const store = new SqliteStore(join(dir, 'audit.db'));
  return {
    sink: new StoreAuditSink(store),
    reopen: () => new StoreAuditSink(store),
    done: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

runAuditSinkContract('platform sink on redis', () => Promise.resolve({ sink: new PlatformAuditSink(redis()), reopen: () => new PlatformAuditSink(redis()), done: () => Promise.resolve() }));

test('two writers on separate store connections append concurrently into one chain, published once each to the bus', async () => {
  const task = `audit-two-writers-${unique()}`;
  const topic = `fedmm.audit.test-${unique()}`;
  const bus = new KafkaBus({ brokers, clientId: 'audit-platform-test', sessionTimeoutMs: 6000, heartbeatIntervalMs: 500 });
  try {
    await bus.ensureTopic(topic, { partitions: 4 });
    const writers = [new PlatformAuditLog({ store: redis(), bus, topic }), new PlatformAuditLog({ store: redis(), bus, topic })];
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        writers[i % 2]!.append(task, 'update.received', { i, when: undefined, tenant: `company-${i % 5}` }, i % 2 === 0 ? 'gateway' : 'aggregator'),
      ),
    );
    const records = await writers[0]!.list(task);
    assert.equal(records.length, 30);
    assert.deepEqual(verifyChain(records, { task }), { ok: true, length: 30, headHash: records[29]!.hash });
    assert.equal((await writers[1]!.verify(task)).ok, true);
    assert.deepEqual(new Set(records.map((r) => r.actor)), new Set(['gateway', 'aggregator']));
    assert.ok(records.every((r) => !('when' in r.payload)), 'undefined payload fields are dropped');

    const seen: string[] = [];
    const done = new Promise<void>((resolve) => {
      void bus.subscribe({
        group: `audit-reader-${unique()}`,
        topics: [topic],
        fromBeginning: true,
        handler: async (msg) => {
          const r = JSON.parse(msg.value.toString('utf8')) as { hash: string; task: string };
          assert.equal(msg.key, r.task);
          seen.push(r.hash);
          if (seen.length >= 30) resolve();
        },
      });
    });
    await done;
    assert.deepEqual(new Set(seen), new Set(records.map((r) => r.hash)));
    assert.equal(seen.length, 30, 'each record is published once when no writer crashes');
  } finally {
    await bus.close();
  }
});

test('a writer that died after swapping the head is completed by the next append, and verify sees a mirror that lags the head', async () => {
  const store = redis();
  const task = `audit-crash-${unique()}`;
  const log = new PlatformAuditLog({ store, recoveryGraceMs: 50 });
  const first = await log.append(task, 'task.created', { model: 'm' }, 'coordinator');
  const orphan = appendRecord(first, { task, kind: 'terms.recorded', actor: 'coordinator', payload: { v: 1 } });
  const head = await store.get(auditHeadKey(task));
  assert.ok(head);
  assert.notEqual(await store.compareAndSet(auditHeadKey(task), head.version, canonicalJson(orphan)), undefined);
  const v = await log.verify(task);
  assert.equal(v.ok, false, 'the head is ahead of the mirror');
  await log.append(task, 'round.opened', { round: 1 }, 'coordinator');
  const records = await log.list(task);
  assert.deepEqual(records.map((r) => r.kind), ['task.created', 'terms.recorded', 'round.opened']);
  assert.equal((await log.verify(task)).ok, true);
});

test('a tampered mirror record is caught by verify, and unknown kinds are refused', async () => {
  const store = redis();
  const task = `audit-tamper-${unique()}`;
  const log = new PlatformAuditLog({ store });
  for (let i = 0; i < 3; i++) await log.append(task, 'round.opened', { round: i + 1 }, 'coordinator');
  const key = auditRecordKey(task, 2);
  const e = await store.get(key);
  await store.put(key, e!.value.replace('"round":2', '"round":7'));
  const v = await log.verify(task);
  assert.equal(v.ok, false);
  assert.equal(v.ok ? 0 : v.firstBadSeq, 2);
  await assert.rejects(log.append(task, 'round.exploded', {}, 'x'), /unknown audit kind/);
});
