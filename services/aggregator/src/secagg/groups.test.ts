import { test } from 'node:test';
import assert from 'node:assert/strict';
import { drawGroups, groupCount } from './groups.js';

const names = (n: number): string[] => Array.from({ length: n }, (_, i) => `c${String(i).padStart(2, '0')}`);

test('groups partition the clients, each at least the threshold and, with a complete graph, small enough for the threshold to be a majority', () => {
  for (const [size, threshold, numShares] of [[2, 2, 0], [3, 2, 0], [4, 3, 0], [4, 2, 3], [5, 3, 5]] as const) {
    for (let n = threshold; n <= 40; n++) {
      const clients = names(n);
      const groups = drawGroups(clients, { size, threshold, numShares });
      assert.deepEqual(groups.flatMap((g) => g.members).sort(), clients, `n ${n}: every client in exactly one group`);
      const sizes = groups.map((g) => g.members.length);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `n ${n}: sizes ${sizes}`);
      assert.ok(Math.min(...sizes) >= threshold, `n ${n}, size ${size}, threshold ${threshold}: sizes ${sizes}`);
      const shares = (s: number): number => (numShares > 0 ? Math.min(numShares, s) : s);
      assert.ok(sizes.every((s) => 2 * threshold > shares(s)), `n ${n}: threshold ${threshold} is no majority of sizes ${sizes}`);
      if (n >= 2 * size && numShares > 0) assert.ok(groups.length >= Math.floor(n / size) , `n ${n}: about n / size groups`);
    }
  }
});

test('groups are re-drawn at random every round', () => {
  const clients = names(12);
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) seen.add(JSON.stringify(drawGroups(clients, { size: 3, threshold: 2, numShares: 0 })));
  // 12 clients into 4 groups of 3 have 15,400 partitions: 20 draws that repeat often are not random.
  assert.ok(seen.size >= 18, `${seen.size} distinct partitions in 20 draws`);
});

test('fewer clients than the threshold cannot form a group', () => {
  assert.throws(() => groupCount(2, { size: 3, threshold: 3, numShares: 0 }), /cannot form a secure-aggregation group of at least the threshold 3/);
});
