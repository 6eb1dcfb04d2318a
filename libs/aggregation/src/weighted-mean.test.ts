import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCpuCompute } from './compute/cpu-compute.js';
import { randomUpdates, refWeightedMean, segmentsOf } from './testing/fixtures.js';
import { WeightedMeanAccumulator } from './weighted-mean.js';

describe('WeightedMeanAccumulator', () => {
  // 70 000 elements: long enough for the SIMD kernels to keep the sum in WebAssembly memory.
  for (const length of [1000, 70_000]) {
    it(`starts from zero on a float64 sum that a finished shard of the same length handed back (${length} elements)`, () => {
      const segments = segmentsOf(['w', length - 300], ['unsent', 300]);
      const first = randomUpdates(3, 4, length);
      const second = randomUpdates(4, 3, length).map((u) => ({ ...u, holds: new Set(['w']) }));
      const run = (updates: typeof first): Float32Array => {
        const acc = new WeightedMeanAccumulator({ shardLength: length, segments });
        for (const u of updates) acc.addScaled(u.id, 0, u.holds ? u.values.subarray(0, length - 300) : u.values, u.weight, 1);
        return acc.finishMean().mean;
      };
      const a = run(first);
      // Reuses the first shard's sum: leftovers would add the first sums to this mean.
      const b = run(second);
      const fresh = refWeightedMean(second, segments);
      for (let i = 0; i < length; i++) {
        assert.ok(Math.abs(b[i]! - fresh[i]!) <= 2.5e-7 * Math.abs(fresh[i]!) + 1e-9, `coordinate ${i}: ${b[i]} vs ${fresh[i]}`);
      }
      assert.notDeepEqual(a, b);
    });

    it(`gives bit-identical means with the SIMD and the scalar kernels (${length} elements)`, () => {
      const segments = segmentsOf(['a', length - 333], ['b', 333]);
      const updates = randomUpdates(9, 11, length);
      const step = 4099; // chunks that straddle the segment boundary and end in partial blocks
      const means = [createCpuCompute(), createCpuCompute({ simd: false })].map((compute) => {
        const acc = new WeightedMeanAccumulator({ shardLength: length, segments }, { compute });
        for (const u of updates) {
          for (let o = 0; o < length; o += step) acc.addScaled(u.id, o, u.values.subarray(o, Math.min(length, o + step)), u.weight, 0.75);
        }
        return acc.finishMean().mean;
      });
      assert.deepEqual(means[0], means[1]);
    });
  }
});
