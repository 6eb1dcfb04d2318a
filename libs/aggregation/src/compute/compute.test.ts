import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FedmmError } from '@fedmm/core';
import * as tf from '@tensorflow/tfjs';
import { assertClose, randomUpdates, refMedian, refTrimmed } from '../testing/fixtures.js';
import type { Compute } from './compute.js';
import { cpuCompute } from './cpu-compute.js';
import { TFJS_NODE_GPU, loadCompute } from './load-compute.js';
import { type TfModule, createTfjsCompute } from './tfjs-compute.js';

const rows = randomUpdates(9, 7, 513).map((u) => u.values);

function refPerCoordinate(rule: (sorted: number[]) => number, start: number, length: number): Float64Array {
  const out = new Float64Array(513);
  for (let i = start; i < start + length; i++) out[i] = rule(rows.map((r) => r[i]!).sort((a, b) => a - b));
  return out;
}

function checkRobustKernels(compute: Compute, rtol: number): void {
  for (const k of [7, 6]) {
    const rs = rows.slice(0, k);
    const median = new Float32Array(513);
    compute.coordinateMedian(rs, 10, 500, median);
    const ref = new Float64Array(513);
    for (let i = 10; i < 510; i++) ref[i] = refMedian(rs.map((r) => r[i]!).sort((a, b) => a - b));
    assertClose(median, ref, rtol, 1e-7, `${compute.name} median K=${k}`);
  }
  const trimmed = new Float32Array(513);
  compute.coordinateTrimmedMean(rows, 2, 0, 513, trimmed);
  assertClose(trimmed, refPerCoordinate(refTrimmed(2 / 7), 0, 513), rtol, 1e-6, `${compute.name} trimmed`);
  const d = new Float64Array(49);
  compute.pairwiseSquaredDistances(rows, 3, 400, d);
  for (let a = 0; a < 7; a++) {
    for (let b = 0; b < 7; b++) {
      let s = 0;
      for (let i = 3; i < 403; i++) s += (rows[a]![i]! - rows[b]![i]!) ** 2;
      assert.ok(Math.abs(d[a * 7 + b]! - s) <= rtol * 10 * s + 1e-9, `${compute.name} distance ${a},${b}: ${d[a * 7 + b]} vs ${s}`);
    }
  }
}

describe('cpu kernels', () => {
  it('weightedSumInto equals the float64 sum for every row count up to 19', () => {
    for (let k = 1; k <= 19; k++) {
      const acc = new Float64Array(600).fill(1);
      const weights = Array.from({ length: k }, (_, j) => j + 0.5);
      cpuCompute.weightedSumInto(acc, 50, rows.concat(rows, rows).slice(0, k), weights);
      const ref = new Float64Array(600).fill(1);
      for (let j = 0; j < k; j++) for (let i = 0; i < 513; i++) ref[50 + i]! += weights[j]! * rows[j % 7]![i]!;
      assertClose(acc, ref, 1e-15, 1e-12, `k=${k}`);
    }
    assert.throws(() => cpuCompute.weightedSumInto(new Float64Array(10), 0, [new Float32Array(11)], [1]), FedmmError);
  });

  it('median, trimmed mean and distances match sorting in float64', () => {
    checkRobustKernels(cpuCompute, 1.2e-7);
    assert.throws(() => cpuCompute.coordinateTrimmedMean(rows, 4, 0, 10, new Float32Array(513)), FedmmError);
  });

  it('median handles ties and equal values', () => {
    const out = new Float32Array(1);
    cpuCompute.coordinateMedian([Float32Array.of(2), Float32Array.of(2), Float32Array.of(1), Float32Array.of(2)], 0, 1, out);
    assert.equal(out[0], 2);
  });
});

describe('tfjs kernels', () => {
  it('match the cpu kernels (run here on tfjs CPU; the GPU image runs the same code on CUDA)', async () => {
    await tf.setBackend('cpu');
    // float32 sums on the device: relative error grows with the length summed.
    checkRobustKernels(createTfjsCompute(tf as unknown as TfModule), 2e-6);
  });
});

describe('loadCompute', () => {
  it("'cpu' and 'auto' without the GPU package give the typed-array kernels", async () => {
    assert.equal(await loadCompute('cpu'), cpuCompute);
    assert.equal((await loadCompute('auto')).name, 'cpu');
  });

  it("'tfjs-node-gpu' without the package fails with a FedmmError that says what to do", async () => {
    await assert.rejects(loadCompute('tfjs-node-gpu'), (e: unknown) =>
      e instanceof FedmmError && e.code === 'FAILED_PRECONDITION' && e.message.includes(TFJS_NODE_GPU) && /'cpu' or 'auto'/.test(e.message));
  });

  it('uses the package when present and reports a broken install as UNAVAILABLE', async () => {
    const gpu = await loadCompute('tfjs-node-gpu', async () => tf);
    assert.equal(gpu.name, 'tfjs-node-gpu');
    const broken = async (): Promise<unknown> => {
      throw new Error('libcudart.so.11.0: cannot open shared object file');
    };
    await assert.rejects(loadCompute('auto', broken), (e: unknown) => e instanceof FedmmError && e.code === 'UNAVAILABLE' && /libcudart/.test(e.message));
    await assert.rejects(loadCompute('gpu' as never), (e: unknown) => e instanceof FedmmError && e.code === 'INVALID_ARGUMENT');
  });
});
