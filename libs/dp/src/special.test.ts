import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logAdd, logErfc, logNdtr, logSub, ndtri } from './index.js';

test('logErfc is finite and accurate far into both tails', () => {
  // log erfc(x) ~ -x^2 - log(x sqrt(pi)) for large x.
  for (const x of [30, 100, 1e4, 1e8]) {
    const asymptotic = -x * x - Math.log(x * Math.sqrt(Math.PI)) - 0.5 / x ** 2 + 0.625 / x ** 4 - 37 / 24 / x ** 6;
    assert.ok(Math.abs(logErfc(x) - asymptotic) <= 1e-15 * x * x + 1e-10, `x=${x}`);
  }
  assert.ok(Math.abs(logErfc(-40) - Math.LN2) < 1e-15);
  assert.ok(Math.abs(logErfc(0) - 0) < 1e-15);
  // scipy 1.17.1 log_ndtr(-10) = -53.23128515051248
  assert.ok(Math.abs(logNdtr(-10) - -53.23128515051248) < 1e-10);
  assert.equal(logErfc(Infinity), -Infinity);
});

test('log-space add/sub and inverse normal CDF', () => {
  assert.ok(Math.abs(logAdd(1000, 1000) - (1000 + Math.LN2)) < 1e-12);
  assert.equal(logAdd(-Infinity, 3), 3);
  assert.ok(Math.abs(logSub(Math.log(3), Math.log(2)) - 0) < 1e-15);
  assert.ok(Number.isNaN(logSub(1, 2)));
  assert.ok(Math.abs(ndtri(0.975) - 1.959963984540054) < 1e-9);
  // scipy 1.17.1 norm.ppf(0.5 * exp(-50)) = -9.745474864965935
  assert.ok(Math.abs(ndtri(0.5 * Math.exp(-50)) - -9.745474864965935) < 1e-9);
});
