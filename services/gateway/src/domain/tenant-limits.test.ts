import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FedmmError } from '@fedmm/core';
import { TenantLimits } from './tenant-limits.js';

test('stream slots are per tenant and come back once', () => {
  const limits = new TenantLimits({ maxStreamsPerTenant: 2, bytesPerSecond: 0, maxWaitMs: 0 });
  const a = limits.acquireStream('acme', 'upload');
  limits.acquireStream('acme', 'download');
  assert.throws(() => limits.acquireStream('acme', 'upload'), (e: unknown) => e instanceof FedmmError && e.code === 'RESOURCE_EXHAUSTED' && /limit is 2/.test(e.message));
  limits.acquireStream('globex', 'upload');
  a();
  a();
  assert.equal(limits.openStreams('acme'), 1);
  limits.acquireStream('acme', 'upload');
});

test('the token bucket passes a burst, paces the rest and refuses a wait beyond the bound', async () => {
  let now = 0;
  const limits = new TenantLimits({ maxStreamsPerTenant: 1, bytesPerSecond: 1024 * 1024, maxWaitMs: 600, now: () => now });
  const t0 = Date.now();
  await limits.throttle('acme', 1024 * 1024);
  assert.ok(Date.now() - t0 < 50, 'the first second of rate passes at once');
  const paced = Date.now();
  await limits.throttle('acme', 256 * 1024);
  assert.ok(Date.now() - paced >= 200, 'a quarter second of debt is waited off');
  await assert.rejects(limits.throttle('acme', 1024 * 1024), (e: unknown) => e instanceof FedmmError && e.code === 'RESOURCE_EXHAUSTED' && /1048576 bytes\/s \(FEDMM_GATEWAY_BYTES_PER_SECOND\)/.test(e.message));
  await limits.throttle('globex', 1024 * 1024);
  now += 2000;
  await limits.throttle('acme', 1024 * 1024);
});
