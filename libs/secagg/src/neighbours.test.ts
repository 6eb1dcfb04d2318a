import { test } from 'node:test';
import assert from 'node:assert/strict';
import { neighbourGraph } from './neighbours.js';
import { clientIds, seedOf } from './test-support.js';

test('the ring graph is k-regular, symmetric and without self-loops', () => {
  const ids = clientIds(40);
  const graph = neighbourGraph(ids, seedOf('graph/1'), 9);
  for (const id of ids) {
    const mine = graph.get(id)!;
    assert.equal(mine.length, 8);
    assert.ok(!mine.includes(id));
    for (const n of mine) assert.ok(graph.get(n)!.includes(id), `${id} -> ${n} is not mutual`);
  }
});

test('the graph is fixed by the round seed and changes with it', () => {
  const ids = clientIds(30);
  const a = neighbourGraph(ids, seedOf('graph/a'), 5);
  assert.deepEqual(neighbourGraph([...ids].reverse(), seedOf('graph/a'), 5), a);
  const b = neighbourGraph(ids, seedOf('graph/b'), 5);
  assert.notDeepEqual(b, a);
});

test('numShares of at least n gives the complete graph', () => {
  const ids = clientIds(6);
  for (const numShares of [6, 7, 100]) {
    const graph = neighbourGraph(ids, seedOf('graph/full'), numShares);
    for (const id of ids) assert.deepEqual(graph.get(id), ids.filter((x) => x !== id));
  }
});

test('an even ring numShares is refused', () => {
  assert.throws(() => neighbourGraph(clientIds(10), seedOf('graph/even'), 4), /odd numShares/);
});
