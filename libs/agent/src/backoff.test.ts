import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FedmmError } from '@fedmm/core';
import { backoffDelay, withRetry, type BackoffPolicy } from './backoff.js';

const policy: BackoffPolicy = { baseMs: 100, capMs: 2000, maxAttempts: 6 };

test('backoff delays grow exponentially, stay within [step/2, step], and never exceed the cap', () => {
  for (let retry = 0; retry < 80; retry++) {
    const step = Math.min(policy.capMs, policy.baseMs * 2 ** retry);
    const lo = backoffDelay(policy, retry, () => 0);
    const hi = backoffDelay(policy, retry, () => 0.999999);
    assert.equal(lo, Math.floor(step / 2));
    assert.ok(hi <= step && hi >= step - 1, `retry ${retry}: ${hi} vs step ${step}`);
    assert.ok(hi <= policy.capMs);
  }
  assert.equal(backoffDelay(policy, 3, () => 0), 400);
  // Crypto jitter by default: always inside the bounds.
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(policy, 10);
    assert.ok(d >= 1000 && d <= 2000, String(d));
  }
});

test('withRetry gives up after maxAttempts tries with the last error, having slept a bounded total', async () => {
  const slept: number[] = [];
  let calls = 0;
  await assert.rejects(
    withRetry(async () => {
      calls++;
      throw new FedmmError('UNAVAILABLE', `down ${calls}`);
    }, { policy, random: () => 1, sleep: async (ms) => void slept.push(ms) }),
    /down 6/,
  );
  assert.equal(calls, 6);
  assert.deepEqual(slept, [100, 200, 400, 800, 1600]);
  assert.ok(slept.reduce((a, b) => a + b, 0) <= policy.capMs * policy.maxAttempts);
});

test('withRetry does not retry an error that says the request is wrong', async () => {
  let calls = 0;
  await assert.rejects(withRetry(async () => {
    calls++;
    throw new FedmmError('FAILED_PRECONDITION', 'round 3 is not open');
  }, { policy, sleep: async () => undefined }), /not open/);
  assert.equal(calls, 1);
});

test('withRetry returns once the platform is back', async () => {
  let calls = 0;
  const v = await withRetry(async () => {
    if (++calls < 3) throw new FedmmError('UNAVAILABLE', 'down');
    return 'ok';
  }, { policy, sleep: async () => undefined });
  assert.equal(v, 'ok');
  assert.equal(calls, 3);
});

test('withRetry stops waiting when the signal aborts', async () => {
  const ac = new AbortController();
  const p = withRetry(async () => {
    throw new FedmmError('UNAVAILABLE', 'down');
  }, { policy: { baseMs: 60_000, capMs: 60_000, maxAttempts: Infinity }, signal: ac.signal });
  setTimeout(() => ac.abort(new Error('stopping')), 20);
  await assert.rejects(p, /stopping/);
});
