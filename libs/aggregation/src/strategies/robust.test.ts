import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FedmmError } from '@fedmm/core';
import {
  type ClientUpdate, assertClose, distance, feed, randomUpdates, refCoordinateWise, refMedian, refTrimmed,
  refWeightedMean, segmentsOf, toChunks,
} from '../testing/fixtures.js';
import type { Strategy } from '../types.js';
import { FedAvg } from './fedavg.js';
import { Krum } from './krum.js';
import { CoordinateMedian } from './median.js';
import { MultiKrum } from './multi-krum.js';
import { NormClipping } from './norm-clipping.js';
import { TrimmedMean } from './trimmed-mean.js';

// Median and trimmed mean pick or average float32 inputs in float64: the only error is the final
// rounding to float32 (half an ulp).
const RTOL = 1.2e-7;

describe('coordinate-wise median and trimmed mean', () => {
  for (const k of [1, 2, 5, 8, 31]) {
    it(`match the float64 reference for K=${k}, each tensor over its holders`, () => {
      const segments = segmentsOf(['shared', 700], ['image', 300], ['sensor', 50]);
      const updates = randomUpdates(k * 7, k, 1050).map((u, c) => ({
        ...u,
        holds: new Set(c % 3 === 0 ? ['shared', 'image'] : ['shared']),
      }));
      const chunks = toChunks(updates, segments, 256, k);
      const median = new CoordinateMedian().createShardAccumulator({ shardLength: 1050, segments });
      feed(median, chunks);
      assertClose(median.finish(), refCoordinateWise(updates, segments, refMedian), RTOL, 1e-12, 'median');
      for (const beta of [0, 0.1, 0.25, 0.45]) {
        const trimmed = new TrimmedMean({ beta }).createShardAccumulator({ shardLength: 1050, segments });
        feed(trimmed, chunks);
        assertClose(trimmed.finish(), refCoordinateWise(updates, segments, refTrimmed(beta)), RTOL, 1e-7, `trimmed beta=${beta}`);
      }
    });
  }

  it('says it holds all K values and validates beta', () => {
    assert.equal(new CoordinateMedian().holdsAllValues, true);
    assert.equal(new FedAvg().holdsAllValues, false);
    assert.throws(() => new TrimmedMean({ beta: 0.5 }), FedmmError);
  });
});

describe('a Byzantine client', () => {
  const n = 2000;
  const k = 10;
  const center = randomUpdates(1, 1, n)[0]!.values;
  const honest = randomUpdates(2, k, n, { center, scale: 0.1 }).map((u) => ({ ...u, weight: 100 }));
  const segments = segmentsOf(['w', n]);
  const honestMean = refWeightedMean(honest, segments);
  const norm = Math.sqrt(honestMean.reduce((s, x) => s + x * x, 0));

  const attacks: [string, (v: number) => number][] = [
    ['scaled x100', (v) => 100 * v],
    ['sign-flipped x-10', (v) => -10 * v],
  ];
  const robust: [string, Strategy, number][] = [
    ['median', new CoordinateMedian(), 0.1],
    ['trimmed mean', new TrimmedMean({ beta: 0.2 }), 0.1],
    ['krum', new Krum({ byzantine: 1 }), 0.2],
    ['multi-krum', new MultiKrum({ byzantine: 1, keep: 5 }), 0.1],
    ['clipped fedavg', new NormClipping(new FedAvg(), { maxNorm: 1.05 * Math.sqrt(center.reduce((s, x) => s + x * x, 0)) }), 0.25],
  ];

  const run = (strategy: Strategy, updates: ClientUpdate[]): Float32Array => {
    const acc = strategy.createShardAccumulator({ shardLength: n });
    feed(acc, toChunks(updates, segments, 512, 4));
    return acc.finish();
  };

  for (const [attack, f] of attacks) {
    const attacked = honest.map((u, c) => (c === 3 ? { ...u, values: u.values.map(f) } : u));
    it(`${attack}: moves FedAvg a lot and the robust strategies little`, () => {
      const fedavgShift = distance(run(new FedAvg(), attacked), honestMean) / norm;
      assert.ok(fedavgShift > 1, `FedAvg moved by ${fedavgShift.toFixed(3)} of the honest mean's norm; expected > 1`);
      for (const [name, strategy, bound] of robust) {
        const shift = distance(run(strategy, attacked), honestMean) / norm;
        assert.ok(shift < bound, `${name} moved by ${shift.toFixed(3)} of the honest mean's norm; expected < ${bound}`);
      }
    });
  }
});
