import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FedmmError } from '@fedmm/core';
import { combineSquaredNorms, sumPartialDistances } from '../coordination.js';
import { createServerOptimizerState } from '../optimizer-state.js';
import {
  type ClientUpdate, assertClose, feed, holdsSegment, randomUpdates, refWeightedMean, segmentsOf, toChunks,
} from '../testing/fixtures.js';
import type { ShardSegment } from '../types.js';
import { FedAdam } from './fedadam.js';
import { FedAvg } from './fedavg.js';
import { Krum } from './krum.js';
import { MultiKrum } from './multi-krum.js';
import { NormClipping } from './norm-clipping.js';

// The model: four tensors; "image" and "sensor" are held by some companies only.
const segments = segmentsOf(['text', 900], ['image', 600], ['fusion', 700], ['sensor', 300]);
const total = 2500;
// Three shards cut across tensor boundaries; the last holds only the sensor tensor.
const cuts = [0, 1100, 2200, total];

function shardSegments(from: number, to: number): ShardSegment[] {
  const out: ShardSegment[] = [];
  for (const s of segments) {
    const a = Math.max(from, s.start);
    const b = Math.min(to, s.start + s.length);
    if (a < b) out.push({ tensor: s.tensor, start: a - from, length: b - a });
  }
  return out;
}

/** Zeros where a client does not hold a tensor, as the accumulators see it. */
function masked(u: ClientUpdate): Float64Array {
  const v = Float64Array.from(u.values);
  for (const s of segments) if (!holdsSegment(u, s)) v.fill(0, s.start, s.start + s.length);
  return v;
}

function makeUpdates(seed: number, k: number): ClientUpdate[] {
  return randomUpdates(seed, k, total).map((u, c) => ({
    ...u,
    holds: new Set(['text', 'fusion', ...(c % 2 === 0 ? ['image'] : []), ...(c % 3 === 0 ? ['sensor'] : [])]),
  }));
}

/** Blanchard et al.'s Krum in float64 over whole vectors. */
function refKrum(updates: readonly ClientUpdate[], f: number, keep: number): string[] {
  const vs = updates.map(masked);
  const n = vs.length;
  const d = vs.map((a) => vs.map((b) => a.reduce((s, x, i) => s + (x - b[i]!) ** 2, 0)));
  const closest = Math.max(1, n - f - 2);
  const scores = d.map((row, i) => row.filter((_, j) => j !== i).sort((a, b) => a - b).slice(0, closest).reduce((s, x) => s + x, 0));
  return scores.map((s, i) => [s, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]).slice(0, keep).map(([, i]) => updates[i]!.id);
}

describe('Krum and Multi-Krum', () => {
  for (const [name, make, keep] of [
    ['krum', () => new Krum({ byzantine: 2 }), 1],
    ['multi-krum', () => new MultiKrum({ byzantine: 2, keep: 4 }), 4],
  ] as const) {
    it(`${name}: sharded two-phase run equals the unsharded run and the float64 reference`, () => {
      const updates = makeUpdates(21, 9);
      const strategy = make();
      // Unsharded.
      const whole = strategy.createShardAccumulator({ shardLength: total, segments });
      feed(whole, toChunks(updates, segments, 400, 1));
      const unshardedDistances = whole.partialDistances();
      const unsharded = whole.finish();
      // Sharded: phase 1 on every shard, selection on the coordinator, phase 2 on every shard.
      const shards = cuts.slice(0, -1).map((from, s) => {
        const segs = shardSegments(from, cuts[s + 1]!);
        const acc = strategy.createShardAccumulator({ shardLength: cuts[s + 1]! - from, segments: segs });
        const local = updates.map((u) => ({ ...u, values: u.values.subarray(from, cuts[s + 1]) }));
        feed(acc, toChunks(local, segs, 250, s));
        return acc;
      });
      // A client that holds nothing of the last shard never appears in it.
      assert.ok(shards[2]!.clientIds.length < updates.length);
      const global = sumPartialDistances(shards.map((a) => a.partialDistances()));
      const selected = strategy.select(global);
      assert.deepEqual(selected, refKrum(updates, 2, keep));
      const sharded = new Float32Array(total);
      shards.forEach((acc, s) => sharded.set(acc.finishWithSelection(selected), cuts[s]));
      // Distances agree up to float64 summation order.
      const ids = global.clientIds;
      for (const a of ids) {
        for (const b of ids) {
          const g = global.squared[ids.indexOf(a) * ids.length + ids.indexOf(b)]!;
          const u = unshardedDistances.squared[unshardedDistances.clientIds.indexOf(a) * ids.length + unshardedDistances.clientIds.indexOf(b)]!;
          assert.ok(Math.abs(g - u) <= 1e-9 * Math.abs(u), `distance ${a}-${b}: ${g} vs ${u}`);
        }
      }
      const chosen = updates.filter((u) => selected.includes(u.id));
      assertClose(sharded, unsharded, 0, 0, 'sharded vs unsharded');
      assertClose(unsharded, refWeightedMean(chosen, segments), 2.5e-7, 1e-9, 'reference');
    });
  }

  it('rejects a selection larger than the clients', () => {
    const acc = new MultiKrum({ byzantine: 0, keep: 3 }).createShardAccumulator({ shardLength: 4 });
    acc.add('a', 0, new Float32Array(4), 1);
    acc.add('b', 0, new Float32Array(4), 1);
    assert.throws(() => acc.finish(), (e: unknown) => e instanceof FedmmError && /keep 3/.test(e.message));
  });
});

describe('update-norm clipping', () => {
  it('sharded two-phase run equals the unsharded run and the float64 reference', () => {
    const updates = makeUpdates(33, 6).map((u, c) => ({ ...u, values: u.values.map((x) => x * (c + 1) * 0.02) }));
    const maxNorm = 1.5;
    const norms = new Map(updates.map((u) => [u.id, Math.sqrt(masked(u).reduce((s, x) => s + x * x, 0))]));
    assert.ok([...norms.values()].some((x) => x > maxNorm) && [...norms.values()].some((x) => x < maxNorm), 'inputs straddle maxNorm');
    const scales = new Map([...norms].map(([id, x]) => [id, Math.min(1, maxNorm / x)]));
    const strategy = new NormClipping(new FedAvg(), { maxNorm });

    const whole = strategy.createShardAccumulator({ shardLength: total, segments });
    feed(whole, toChunks(updates, segments, 400, 1));
    const unsharded = whole.finish();

    const shards = cuts.slice(0, -1).map((from, s) => {
      const segs = shardSegments(from, cuts[s + 1]!);
      const acc = strategy.createShardAccumulator({ shardLength: cuts[s + 1]! - from, segments: segs });
      feed(acc, toChunks(updates.map((u) => ({ ...u, values: u.values.subarray(from, cuts[s + 1]) })), segs, 250, s));
      return acc;
    });
    const global = combineSquaredNorms(shards.map((a) => a.partialSquaredNorms()));
    for (const [id, x] of norms) assert.ok(Math.abs(global.get(id)! - x) < 1e-9 * x);
    const sharded = new Float32Array(total);
    const clipScales = strategy.scales(global);
    shards.forEach((acc, s) => sharded.set(acc.finishWithScales(clipScales), cuts[s]));

    const ref = refWeightedMean(updates, segments, scales);
    assertClose(unsharded, ref, 2.5e-7, 1e-9, 'unsharded');
    assertClose(sharded, ref, 2.5e-7, 1e-9, 'sharded');
  });

  it('wraps a server optimizer and refuses missing scales', () => {
    const strategy = new NormClipping(new FedAdam(), { maxNorm: 1 });
    assert.deepEqual(strategy.clientConfig(), { learning_rate: 0.1 });
    const acc = strategy.createShardAccumulator({ shardLength: 4 });
    acc.add('a', 0, Float32Array.of(3, 0, 4, 0), 1);
    assert.deepEqual([...acc.partialSquaredNorms()], [['a', 25]]);
    assert.throws(() => acc.finishWithScales(new Map()), (e: unknown) => e instanceof FedmmError && /scale for client 'a'/.test(e.message));
    const state = createServerOptimizerState('fedadam', 4);
    const out = acc.finish({ optimizerState: state });
    // The clipped update is (0.6, 0, 0.8, 0); Adam's first step is +-eta_norm-ish in its direction.
    assertClose(state.m, [0.06, 0, 0.08, 0], 1e-6, 1e-9, 'm of the clipped update');
    assert.ok(out[0]! > 0 && out[1] === 0);
  });
});
