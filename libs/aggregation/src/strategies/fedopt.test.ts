import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FedmmError } from '@fedmm/core';
import { createServerOptimizerState, decodeServerOptimizerState, encodeServerOptimizerState } from '../optimizer-state.js';
import { assertClose, feed, randomUpdates, refWeightedMean, segmentsOf, toChunks } from '../testing/fixtures.js';
import type { ServerOptimizerAlgorithm } from '../types.js';
import { FedAdagrad } from './fedadagrad.js';
import { FedAdam } from './fedadam.js';
import type { FedOpt } from './fedopt.js';
import { FedYogi } from './fedyogi.js';

interface RefParams { eta: number; beta1: number; beta2: number; tau: number }

/** Reddi et al. 2021 server steps in float64, written out independently of the library. */
function refStep(alg: ServerOptimizerAlgorithm, p: RefParams, delta: Float64Array, m: Float64Array, v: Float64Array, t: number): Float64Array {
  const step = new Float64Array(delta.length);
  for (let i = 0; i < delta.length; i++) {
    const d = delta[i]!;
    m[i] = p.beta1 * m[i]! + (1 - p.beta1) * d;
    if (alg === 'fedadam') v[i] = p.beta2 * v[i]! + (1 - p.beta2) * d * d;
    else if (alg === 'fedyogi') v[i] = v[i]! - (1 - p.beta2) * d * d * Math.sign(v[i]! - d * d);
    else v[i] = v[i]! + d * d;
    const lr = alg === 'fedadam' ? (p.eta * Math.sqrt(1 - p.beta2 ** t)) / (1 - p.beta1 ** t) : p.eta;
    step[i] = (lr * m[i]!) / (Math.sqrt(v[i]!) + p.tau);
  }
  return step;
}

const cases: [ServerOptimizerAlgorithm, () => FedOpt][] = [
  ['fedadam', () => new FedAdam({ eta: 0.05 })],
  ['fedyogi', () => new FedYogi()],
  ['fedadagrad', () => new FedAdagrad({ beta1: 0.5 })],
];

describe('server optimizers', () => {
  for (const [alg, make] of cases) {
    it(`${alg} matches the float64 reference over 4 rounds with its state persisted as bytes`, () => {
      const strategy = make();
      const n = 1500;
      const segments = segmentsOf(['a', 1000], ['b', 500]);
      let state = createServerOptimizerState(alg, n);
      let params: Float32Array = new Float32Array(n).fill(0.25);
      const refParams = Float64Array.from(params);
      const m = new Float64Array(n);
      const v = new Float64Array(n);
      for (let round = 1; round <= 4; round++) {
        const updates = randomUpdates(round * 31, 7, n, { scale: 0.01 });
        const acc = strategy.createShardAccumulator({ shardLength: n, segments });
        feed(acc, toChunks(updates, segments, 333, round));
        params = acc.finish({ previous: params, optimizerState: state });
        assert.equal(state.step, round);
        state = decodeServerOptimizerState(encodeServerOptimizerState(state));
        const step = refStep(alg, strategy.params, refWeightedMean(updates, segments), m, v, round);
        for (let i = 0; i < n; i++) refParams[i] = refParams[i]! + step[i]!;
        // m and v are stored as float32 between rounds: ~1e-7 relative to the pseudo-gradient
        // (|d| ~ 4e-3 here) per round, so m near zero by cancellation gets an absolute bound.
        assertClose(params, refParams, 1e-5, 1e-7, `${alg} round ${round}`);
        assertClose(state.m, m, 1e-5, 1e-9, `${alg} m`);
        assertClose(state.v, v, 1e-5, 1e-12, `${alg} v`);
      }
    });
  }

  it('keeps the value and the moments of a tensor nobody sent this round', () => {
    const segments = segmentsOf(['text', 100], ['image', 100]);
    const strategy = new FedAdam();
    const state = createServerOptimizerState('fedadam', 200);
    state.m.fill(0.3);
    state.v.fill(0.2);
    const previous = new Float32Array(200).fill(1);
    const updates = randomUpdates(5, 3, 200).map((u) => ({ ...u, holds: new Set(['text']) }));
    const acc = strategy.createShardAccumulator({ shardLength: 200, segments });
    feed(acc, toChunks(updates, segments, 64, 1));
    const out = acc.finish({ previous, optimizerState: state });
    for (let i = 100; i < 200; i++) {
      assert.equal(out[i], 1);
      assert.equal(state.m[i], Math.fround(0.3));
      assert.equal(state.v[i], Math.fround(0.2));
    }
    assert.notEqual(out[0], 1);
  });

  it('applies the perturbation hook to the pseudo-gradient before the server step', () => {
    const strategy = new FedAdagrad();
    const state = createServerOptimizerState('fedadagrad', 10);
    const acc = strategy.createShardAccumulator({ shardLength: 10 });
    acc.add('c', 0, new Float32Array(10).fill(2), 1);
    const out = acc.finish({ optimizerState: state, perturb: (mean) => mean.fill(-1) });
    // Adagrad with beta1 = 0: step = eta * d / |d| = -eta for d = -1.
    for (const x of out) assert.ok(Math.abs(x + 0.1) < 1e-6);
  });

  it('refuses to run without, or with a mismatched, optimizer state, and sends eta_l to clients', () => {
    const strategy = new FedYogi({ etaL: 0.02 });
    assert.deepEqual(strategy.clientConfig(), { learning_rate: 0.02 });
    const run = (state?: ReturnType<typeof createServerOptimizerState>) => {
      const acc = strategy.createShardAccumulator({ shardLength: 4 });
      acc.add('c', 0, new Float32Array(4), 1);
      return state === undefined ? acc.finish() : acc.finish({ optimizerState: state });
    };
    assert.throws(() => run(), (e: unknown) => e instanceof FedmmError && e.code === 'FAILED_PRECONDITION' && /createServerOptimizerState/.test(e.message));
    assert.throws(() => run(createServerOptimizerState('fedadam', 4)), (e: unknown) => e instanceof FedmmError && /fedadam/.test(e.message));
    assert.throws(() => run(createServerOptimizerState('fedyogi', 5)), FedmmError);
    assert.throws(() => new FedAdam({ beta1: 1 }), FedmmError);
  });
});

describe('server optimizer state bytes', () => {
  it('round-trips and rejects truncated or foreign bytes', () => {
    const s = createServerOptimizerState('fedyogi', 5);
    s.step = 7;
    s.m.set([1, 2, 3, 4, 5]);
    s.v.set([0.5, 0.25, 0, 1e-8, 3]);
    const bytes = encodeServerOptimizerState(s);
    const back = decodeServerOptimizerState(bytes.slice());
    assert.equal(back.algorithm, 'fedyogi');
    assert.equal(back.step, 7);
    assert.deepEqual([...back.m], [...s.m]);
    assert.deepEqual([...back.v], [...s.v]);
    // An unaligned view, as a buffer read from a socket or store may be.
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    assert.deepEqual([...decodeServerOptimizerState(shifted.subarray(1)).v], [...s.v]);
    const isDataLoss = (e: unknown) => e instanceof FedmmError && e.code === 'DATA_LOSS';
    assert.throws(() => decodeServerOptimizerState(bytes.subarray(0, bytes.length - 4)), isDataLoss);
    assert.throws(() => decodeServerOptimizerState(bytes.subarray(0, 10)), isDataLoss);
    const foreign = bytes.slice();
    foreign[0] = 0;
    assert.throws(() => decodeServerOptimizerState(foreign), isDataLoss);
  });
});
