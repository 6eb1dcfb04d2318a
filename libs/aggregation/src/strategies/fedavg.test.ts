import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FedmmError } from '@fedmm/core';
import { assertClose, feed, randomUpdates, refWeightedMean, segmentsOf, toChunks } from '../testing/fixtures.js';
import { FedAvg } from './fedavg.js';
import { FedProx } from './fedprox.js';

// With float64 accumulation the only error left is rounding the mean (and previous + mean) to
// float32: half an ulp each, so rtol 2.5e-7 plus a small atol for results near zero.
const RTOL = 2.5e-7;
const ATOL = 1e-9;

describe('FedAvg', () => {
  for (const k of [1, 3, 17, 64]) {
    it(`matches the float64 weighted mean for K=${k}, chunks shuffled across clients`, () => {
      const segments = segmentsOf(['a', 3000], ['b', 1201]);
      const updates = randomUpdates(100 + k, k, 4201);
      const acc = new FedAvg().createShardAccumulator({ shardLength: 4201, segments });
      feed(acc, toChunks(updates, segments, 700, k));
      assertClose(acc.finish(), refWeightedMean(updates, segments), RTOL, ATOL);
      assert.deepEqual(new Set(acc.clientIds), new Set(updates.map((u) => u.id)));
    });
  }

  it('adds the mean update to the previous parameters', () => {
    const segments = segmentsOf(['w', 500]);
    const updates = randomUpdates(7, 5, 500);
    const previous = randomUpdates(8, 1, 500)[0]!.values;
    const acc = new FedAvg().createShardAccumulator({ shardLength: 500, segments });
    feed(acc, toChunks(updates, segments, 128, 1));
    const ref = refWeightedMean(updates, segments).map((d, i) => d + previous[i]!);
    assertClose(acc.finish({ previous }), ref, RTOL, 1e-7);
  });

  it('averages a modality-specific tensor over its holders only and keeps tensors nobody sent', () => {
    const segments = segmentsOf(['text.lora_A', 400], ['image.lora_A', 300], ['sensor.lora_A', 200]);
    const updates = randomUpdates(11, 6, 900).map((u, c) => ({
      ...u,
      holds: new Set(c < 2 ? ['text.lora_A', 'image.lora_A'] : ['text.lora_A']),
    }));
    const previous = new Float32Array(900).fill(0.5);
    const acc = new FedAvg().createShardAccumulator({ shardLength: 900, segments });
    feed(acc, toChunks(updates, segments, 256, 3));
    const out = acc.finish({ previous });
    const ref = refWeightedMean(updates, segments).map((d, i) => d + previous[i]!);
    assertClose(out, ref, RTOL, 1e-7);
    // The image mean is over the two holders: it must differ from a mean that counts all six.
    const holders = updates.slice(0, 2);
    const w = holders.reduce((s, u) => s + u.weight, 0);
    const i = 400;
    assert.ok(Math.abs(out[i]! - 0.5 - (holders[0]!.weight * holders[0]!.values[i]! + holders[1]!.weight * holders[1]!.values[i]!) / w) < 1e-6);
    for (let j = 700; j < 900; j++) assert.equal(out[j], 0.5, 'sensor tensor nobody sent keeps its previous value');
  });

  it('gives the same result for every fuse width and a tiny pending budget', () => {
    const segments = segmentsOf(['w', 2048]);
    const updates = randomUpdates(5, 13, 2048);
    const chunks = toChunks(updates, segments, 512, 9);
    const results = [1, 3, 8].map((fuseWidth) => {
      const acc = new FedAvg({ fuseWidth, pendingBudgetBytes: fuseWidth === 3 ? 4096 : 1 << 26 }).createShardAccumulator({ shardLength: 2048 });
      feed(acc, chunks);
      return acc.finish();
    });
    const ref = refWeightedMean(updates, segments);
    for (const r of results) assertClose(r, ref, RTOL, ATOL);
  });

  it('rejects a client that sent part of a tensor, a duplicate chunk, a changed weight and late chunks', () => {
    const make = () => new FedAvg().createShardAccumulator({ shardLength: 100, segments: segmentsOf(['x', 60], ['y', 40]) });
    const v = new Float32Array(30).fill(1);

    const partial = make();
    partial.add('c1', 0, v, 10);
    assert.throws(() => partial.finish(), (e: unknown) => e instanceof FedmmError && e.code === 'FAILED_PRECONDITION' && /30 of the 60/.test(e.message));

    const dup = make();
    dup.add('c1', 0, v, 10);
    dup.add('c1', 30, v, 10);
    assert.throws(() => dup.add('c1', 0, v, 10), (e: unknown) => e instanceof FedmmError && e.code === 'INVALID_ARGUMENT' && /twice/.test(e.message));

    const weights = make();
    weights.add('c1', 0, v, 10);
    assert.throws(() => weights.add('c1', 30, v, 11), (e: unknown) => e instanceof FedmmError && /same number of examples/.test(e.message));
    assert.throws(() => weights.add('c2', 0, v, 0), (e: unknown) => e instanceof FedmmError && e.code === 'INVALID_ARGUMENT');
    assert.throws(() => weights.add('c2', 90, v, 1), (e: unknown) => e instanceof FedmmError && /outside the shard/.test(e.message));

    const late = make();
    late.add('c1', 0, new Float32Array(100), 1);
    late.finish();
    assert.throws(() => late.add('c2', 0, v, 1), (e: unknown) => e instanceof FedmmError && e.code === 'FAILED_PRECONDITION');
  });

  it('rejects segments that do not tile the shard', () => {
    const s = new FedAvg();
    assert.throws(() => s.createShardAccumulator({ shardLength: 10, segments: segmentsOf(['a', 4], ['b', 5]) }), FedmmError);
    assert.throws(() => s.createShardAccumulator({ shardLength: 10, segments: [{ tensor: 'a', start: 1, length: 9 }] }), FedmmError);
    assert.throws(() => s.createShardAccumulator({ shardLength: 0 }), FedmmError);
  });
});

describe('FedProx', () => {
  it('sends mu to the clients and aggregates like FedAvg', () => {
    const strategy = new FedProx({ mu: 0.01 });
    assert.deepEqual(strategy.clientConfig(), { proximal_mu: 0.01 });
    const segments = segmentsOf(['w', 300]);
    const updates = randomUpdates(3, 4, 300);
    const acc = strategy.createShardAccumulator({ shardLength: 300 });
    feed(acc, toChunks(updates, segments, 100, 2));
    assertClose(acc.finish(), refWeightedMean(updates, segments), RTOL, ATOL);
    assert.throws(() => new FedProx({ mu: -1 }), FedmmError);
  });
});
