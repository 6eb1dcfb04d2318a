import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCpuCompute } from './compute/cpu-compute.js';
import { randomUpdates, refWeightedMean, segmentsOf } from './testing/fixtures.js';
import { WeightedMeanAccumulator } from './weighted-mean.js';

describe('WeightedMeanAccumulator', () => {
  it('starts from zero on a float64 sum that a finished shard of the same length handed back', () => {
    const segments = segmentsOf(['w', 1000]);
    const first = randomUpdates(3, 4, 1000);
    const second = randomUpdates(4, 3, 1000);
    const run = (updates: typeof first): Float32Array => {
      const acc = new WeightedMeanAccumulator({ shardLength: 1000, segments });
      for (const u of updates) acc.addScaled(u.id, 0, u.values, u.weight, 1);
      return acc.finishMean().mean;
    };
    const a = run(first);
    // Reuses the first shard's sum (same length): leftovers would add the first mean to this one.
    const b = run(second);
    const fresh = refWeightedMean(second, segments);
    for (let i = 0; i < 1000; i++) assert.ok(Math.abs(b[i]! - fresh[i]!) <= 2.5e-7 * Math.abs(fresh[i]!) + 1e-9, `coordinate ${i}: ${b[i]} vs ${fresh[i]}`);
    assert.notDeepEqual(a, b);
  });

  it('gives bit-identical means with the SIMD and the scalar kernels', () => {
    const segments = segmentsOf(['a', 700], ['b', 333]);
    const updates = randomUpdates(9, 11, 1033);
    const means = [createCpuCompute(), createCpuCompute({ simd: false })].map((compute) => {
      const acc = new WeightedMeanAccumulator({ shardLength: 1033, segments }, { compute });
      for (const u of updates) {
        for (let o = 0; o < 1033; o += 100) acc.addScaled(u.id, o, u.values.subarray(o, Math.min(1033, o + 100)), u.weight, 0.75);
      }
      return acc.finishMean().mean;
    });
    assert.deepEqual(means[0], means[1]);
  });
});
