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

    it(`adds chunks of different boundaries over a reused sum, its first pass assigning (${length} elements)`, () => {
      const segments = segmentsOf(['w', length]);
      for (const seed of [1, 2]) {
        const updates = randomUpdates(40 + seed, 3, length);
        const sizes = [1000, 1500, 770];
        const acc = new WeightedMeanAccumulator({ shardLength: length, segments }, { fuseWidth: seed === 1 ? 8 : 1 });
        // Client 0 from the end, the others from the start: ranges overlap in every way.
        for (let o = length - (length % sizes[0]! || sizes[0]!); o >= 0; o -= sizes[0]!) {
          acc.addScaled(updates[0]!.id, o, updates[0]!.values.subarray(o, Math.min(length, o + sizes[0]!)), updates[0]!.weight, 1);
        }
        for (const c of [1, 2]) {
          const u = updates[c]!;
          for (let o = 0; o < length; o += sizes[c]!) acc.addScaled(u.id, o, u.values.subarray(o, Math.min(length, o + sizes[c]!)), u.weight, 1);
        }
        const mean = acc.finishMean().mean;
        const ref = refWeightedMean(updates, segments);
        for (let i = 0; i < length; i++) {
          assert.ok(Math.abs(mean[i]! - ref[i]!) <= 2.5e-7 * Math.abs(ref[i]!) + 1e-9, `seed ${seed} coordinate ${i}: ${mean[i]} vs ${ref[i]}`);
        }
      }
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
