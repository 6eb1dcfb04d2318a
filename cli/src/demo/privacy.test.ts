import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FedmmError } from '@fedmm/core';
import { PRIVACY_PRESETS, planRecordSampling, recordBatchSize } from './privacy.js';

describe('planRecordSampling', () => {
  test('no company samples above the reserved rate, and each keeps its local epochs', () => {
    const sizes = [400, 250, 300, 86];
    for (const target of [0.05, 0.08, 0.1, 0.25, 0.5]) {
      const { samplingRate: q, localSteps } = planRecordSampling(target, sizes, 2);
      assert.ok(Math.abs(q - target) / target < 0.15, `rate ${q} stays near ${target}`);
      for (const n of sizes) {
        const b = recordBatchSize(q, n);
        assert.ok(b / n <= q, `batch ${b} of ${n} samples is within rate ${q}`);
        const perEpoch = Math.ceil(n / b);
        // The agent trains floor(localSteps / perEpoch) epochs: at least the planned two, never more steps than reserved.
        const epochs = Math.max(1, Math.floor(localSteps / perEpoch));
        assert.ok(epochs >= 2 && epochs * perEpoch <= localSteps, `${n} samples: ${epochs} epochs of ${perEpoch} steps within ${localSteps}`);
      }
    }
  });

  test('a rate the rounding pushes over is replaced by a fraction that fits', () => {
    // 0.08 x 86 rounds to 7, i.e. 0.0814 > 0.08, which the privacy service would refuse to commit.
    assert.ok(recordBatchSize(0.08, 86) / 86 > 0.08);
    const { samplingRate } = planRecordSampling(0.08, [400, 86], 1);
    assert.notEqual(samplingRate, 0.08);
    assert.ok(recordBatchSize(samplingRate, 86) / 86 <= samplingRate && recordBatchSize(samplingRate, 400) / 400 <= samplingRate);
  });

  test('refuses a rate outside (0, 1] and empty companies', () => {
    assert.throws(() => planRecordSampling(0, [100], 1), (e: unknown) => e instanceof FedmmError && e.code === 'INVALID_ARGUMENT');
    assert.throws(() => planRecordSampling(1.5, [100], 1), FedmmError);
    assert.throws(() => planRecordSampling(0.1, [100, 0], 1), /at least one training sample/);
  });

  test('the presets name their own mode and a positive noise where DP is on', () => {
    for (const [mode, p] of Object.entries(PRIVACY_PRESETS)) {
      assert.equal(p.mode, mode);
      if (mode !== 'none') assert.ok(p.noiseMultiplier > 0 && p.clipNorm > 0 && p.delta > 0);
    }
  });
});
