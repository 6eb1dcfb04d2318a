import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  accessTier,
  accumulate,
  compileAccessTiers,
  compileRewardRule,
  DEFAULT_ACCESS_TIERS,
  mayDownload,
  rewardShares,
} from './rewards.js';

test('reward shares are proportional to positive contribution and sum to one', () => {
  const shares = rewardShares({ a: 3, b: 1, freeRider: 0, harmful: -2 });
  assert.deepEqual(shares, { a: 0.75, b: 0.25, freeRider: 0, harmful: 0 });
  assert.deepEqual(rewardShares({ a: -1, b: 0 }), { a: 0, b: 0 });
  const floored = rewardShares({ a: 0.5, b: 0.3 }, compileRewardRule({ floor: 0.1 }));
  assert.ok(Math.abs((floored['a'] ?? 0) - 2 / 3) < 1e-12 && Math.abs((floored['b'] ?? 0) - 1 / 3) < 1e-12);
});

test('cumulative values add rounds and keep absent companies', () => {
  const after = accumulate(accumulate({}, { a: 0.1, b: 0.2 }), { a: 0.3, c: -0.1 });
  assert.ok(Math.abs((after['a'] ?? 0) - 0.4) < 1e-12);
  assert.equal(after['b'], 0.2);
  assert.equal(after['c'], -0.1);
});

test('access tiers follow the share, and free riders wait for new versions', () => {
  assert.deepEqual(accessTier(0.3), { tier: 'full', versionDelay: 0 });
  assert.deepEqual(accessTier(0.01), { tier: 'reduced', versionDelay: 1 });
  assert.deepEqual(accessTier(0), { tier: 'free-rider', versionDelay: 3 });
  const freeRider = accessTier(0, DEFAULT_ACCESS_TIERS);
  assert.equal(mayDownload({ tier: freeRider, versionRound: 5, currentRound: 7 }), false);
  assert.equal(mayDownload({ tier: freeRider, versionRound: 5, currentRound: 8 }), true);
  assert.equal(mayDownload({ tier: accessTier(0.5), versionRound: 5, currentRound: 5 }), true);
  assert.throws(() => mayDownload({ tier: freeRider, versionRound: -1, currentRound: 2 }), /whole numbers/);
});

test('tier configs are validated and ordered', () => {
  const config = compileAccessTiers({
    tiers: [
      { name: 'rest', minShare: 0, versionDelay: 2 },
      { name: 'top', minShare: 0.2, versionDelay: 0 },
    ],
  });
  assert.deepEqual(
    config.tiers.map((t) => t.name),
    ['top', 'rest'],
  );
  assert.ok(Object.isFrozen(config.tiers));
  assert.throws(() => compileAccessTiers({ tiers: [{ name: 'top', minShare: 0.2, versionDelay: 0 }] }), /minShare 0/);
  assert.throws(
    () => compileAccessTiers({ tiers: [{ name: 'x', minShare: 0, versionDelay: 1.5 }] }),
    /whole number of rounds/,
  );
  assert.throws(
    () =>
      compileAccessTiers({
        tiers: [
          { name: 'x', minShare: 0, versionDelay: 1 },
          { name: 'x', minShare: 0.1, versionDelay: 0 },
        ],
      }),
    /defined twice/,
  );
  assert.throws(() => compileRewardRule({ floor: -1 }), /floor/);
});
