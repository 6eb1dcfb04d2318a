import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitByPartitionBytes } from './kafka.js';
import { defaultPartition } from './partitioner.js';

test('large messages that share a partition go in separate requests; small ones share', () => {
  const big = new Uint8Array(700 * 1024);
  const msgs = Array.from({ length: 12 }, (_, i) => ({ key: `1/${i}`, value: big }));
  const groups = splitByPartitionBytes(msgs, 4, 1024 * 1024);
  assert.deepEqual(groups.flat(), msgs, 'order and content are kept');
  for (const g of groups) {
    const per = new Map<number, number>();
    for (const m of g) per.set(defaultPartition(m.key, 4), (per.get(defaultPartition(m.key, 4)) ?? 0) + 1);
    assert.ok([...per.values()].every((n) => n === 1), 'at most one 700 KiB message per partition per request');
  }
  const small = Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: new Uint8Array(100) }));
  assert.equal(splitByPartitionBytes(small, 4, 1024 * 1024).length, 1);
});
