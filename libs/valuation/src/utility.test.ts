import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isFedmmError } from '@fedmm/core';
import { CachedUtility, subsetKey } from './utility.js';

test('a subset is evaluated once whatever the order of its members', async () => {
  const seen: string[][] = [];
  const cache = new CachedUtility((s) => {
    seen.push([...s]);
    return Promise.resolve(s.length);
  });
  assert.equal(await cache.value(['b', 'a']), 2);
  assert.equal(await cache.value(['a', 'b']), 2);
  assert.equal(await cache.value([]), 0);
  assert.equal(cache.evaluations, 2);
  assert.equal(cache.requests, 3);
  assert.deepEqual(seen, [['a', 'b'], []]);
  assert.equal(subsetKey(['b', 'a']), subsetKey(['a', 'b']));
});

test('concurrent requests for one subset share a single evaluation', async () => {
  let calls = 0;
  const cache = new CachedUtility(async () => {
    calls++;
    await new Promise((r) => setTimeout(r, 5));
    return 1;
  });
  const values = await Promise.all([cache.value(['x']), cache.value(['x']), cache.value(['x'])]);
  assert.deepEqual(values, [1, 1, 1]);
  assert.equal(calls, 1);
});

test('a failed evaluation is retried on the next request', async () => {
  let fail = true;
  const cache = new CachedUtility(() => (fail ? Promise.reject(new Error('worker lost')) : Promise.resolve(3)));
  await assert.rejects(cache.value(['a']), /worker lost/);
  fail = false;
  assert.equal(await cache.value(['a']), 3);
  assert.equal(cache.evaluations, 2);
});

test('non-finite utilities and repeated members are refused', async () => {
  const cache = new CachedUtility(() => Promise.resolve(Number.NaN));
  await assert.rejects(cache.value(['a']), (e) => isFedmmError(e) && e.code === 'INVALID_ARGUMENT' && /finite/.test(e.message));
  assert.throws(() => new CachedUtility(() => Promise.resolve(0)).value(['a', 'a']), /twice/);
});
