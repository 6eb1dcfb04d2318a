import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FedmmError } from '@fedmm/core';
import * as tf from '@tensorflow/tfjs';
import { assertClose, randomUpdates, refMedian, refTrimmed } from '../testing/fixtures.js';
import type { Compute } from './compute.js';
import { cpuCompute, createCpuCompute } from './cpu-compute.js';
import { TFJS_NODE_GPU, loadCompute } from './load-compute.js';
import { type TfModule, createTfjsCompute } from './tfjs-compute.js';
import { createWasmKernels } from './wasm-kernels.js';

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

  it('the SIMD and scalar linear kernels agree bit for bit, across blocks, row groups and tails', () => {
    assert.equal(cpuCompute.name, 'cpu', 'node 20 has WebAssembly SIMD: the default kernels must use it');
    const scalar = createCpuCompute({ simd: false });
    assert.equal(scalar.name, 'cpu-scalar');
    // A small block so that one call spans several blocks and ends in a partial one.
    const simd = createWasmKernels({ blockLength: 16 })!;
    const long = randomUpdates(21, 19, 203).map((u) => u.values);
    for (const k of [1, 2, 3, 5, 7, 8, 9, 16, 19]) {
      for (const [offset, n] of [[0, 203], [5, 1], [7, 3], [11, 16], [2, 33], [40, 163]] as const) {
        const rs = long.slice(0, k).map((r) => r.subarray(203 - n));
        const weights = rs.map((_, j) => (j + 1) * 13.37 - (j % 3) * 40);
        const a = Float64Array.from({ length: 260 }, (_, i) => Math.sin(i) * 1e3);
        const b = a.slice();
        const c = a.slice();
        scalar.weightedSumInto(a, offset, rs, weights);
        simd.weightedSumInto(b, offset, rs, weights);
        cpuCompute.weightedSumInto(c, offset, rs, weights);
        assert.deepEqual(b, a, `block-16 SIMD k=${k} offset=${offset} n=${n}`);
        assert.deepEqual(c, a, `default SIMD k=${k} offset=${offset} n=${n}`);
        // assign: old values are ignored, the result is that of a zeroed range; outside it nothing moves.
        const zeroed = b.slice().fill(0, offset, offset + n);
        scalar.weightedSumInto(zeroed, offset, rs, weights);
        for (const compute of [scalar, simd, cpuCompute]) {
          const dirty = b.slice().fill(NaN, offset, offset + n);
          compute.weightedSumInto(dirty, offset, rs, weights, true);
          assert.deepEqual(dirty, zeroed, `assign k=${k} offset=${offset} n=${n}`);
        }
        const outA = new Float32Array(260).fill(-1);
        const outB = outA.slice();
        scalar.scaleInto(outA, a, offset, n, 1 / 7.3);
        simd.scaleInto(outB, a, offset, n, 1 / 7.3);
        assert.deepEqual(outB, outA, `scaleInto offset=${offset} n=${n}`);
      }
    }
    // Special values go through the same IEEE operations.
    const specials = Float32Array.of(NaN, Infinity, -Infinity, -0, 3.4e38, 1e-45, -1e-45, 0.1);
    const x = new Float64Array(8);
    const y = new Float64Array(8);
    scalar.weightedSumInto(x, 0, [specials, specials], [1e300, -2]);
    simd.weightedSumInto(y, 0, [specials, specials], [1e300, -2]);
    assert.deepEqual(y, x);
  });

  it('update a sum in WebAssembly memory in place, bit for bit like the scalar loop, up to the memory end', () => {
    const scalar = createCpuCompute({ simd: false });
    const simd = createWasmKernels({ blockLength: 16, minResidentSumLength: 100 })!;
    // 16-element blocks stage 640 bytes; this length ends the sum exactly at the end of a page.
    const length = (65536 - 640) / 8;
    const resident = simd.allocateSum(length);
    assert.equal(resident.length, length);
    assert.ok(resident.every((x) => x === 0));
    assert.ok(!(resident.buffer instanceof SharedArrayBuffer) && resident.buffer.byteLength === 65536, 'the sum lives in its own WebAssembly memory');
    assert.equal(simd.allocateSum(99).buffer.byteLength, 99 * 8, 'a short sum is a plain array');
    const plain = new Float64Array(length);
    const long = randomUpdates(23, 11, 2003).map((u) => u.values);
    for (const [k, offset, n] of [[11, 0, 2003], [3, length - 2003, 2003], [8, length - 7, 7], [5, 1, 30], [1, length - 1, 1]] as const) {
      const rs = long.slice(0, k).map((r) => r.subarray(0, n));
      const weights = rs.map((_, j) => 0.5 + j * 3.25);
      simd.weightedSumInto(resident, offset, rs, weights);
      scalar.weightedSumInto(plain, offset, rs, weights);
      assert.deepEqual(resident, plain, `k=${k} offset=${offset} n=${n}`);
    }
    // assign over a range holding old values: as if it were zero.
    resident.fill(NaN, 100, 2200);
    plain.fill(0, 100, 2200);
    const rs = long.slice(0, 9).map((r) => r.subarray(0, 2000));
    simd.weightedSumInto(resident, 150, rs, rs.map((_, j) => j - 2.5), true);
    scalar.weightedSumInto(plain, 150, rs, rs.map((_, j) => j - 2.5), true);
    resident.fill(0, 100, 150);
    resident.fill(0, 2150, 2200);
    assert.deepEqual(resident, plain, 'assign on a resident sum');
    // A view into the sum finds its memory too.
    const view = resident.subarray(1000);
    simd.weightedSumInto(view, 3, [long[0]!.subarray(0, 50)], [2]);
    scalar.weightedSumInto(plain.subarray(1000), 3, [long[0]!.subarray(0, 50)], [2]);
    assert.deepEqual(resident, plain);
    for (const [start, n] of [[0, length], [length - 3, 3], [7, 33]] as const) {
      const a = new Float32Array(length);
      const b = new Float32Array(length);
      simd.scaleInto(a, resident, start, n, 1 / 3.7);
      scalar.scaleInto(b, plain, start, n, 1 / 3.7);
      assert.deepEqual(a, b, `scaleInto start=${start} n=${n}`);
    }
  });

  it('keeps at most 32 live sums in WebAssembly memories (each reserves address space) and plain arrays beyond', () => {
    const simd = createWasmKernels({ blockLength: 16, minResidentSumLength: 100 })!;
    const sums = Array.from({ length: 40 }, () => simd.allocateSum(200));
    const resident = sums.filter((x) => x.buffer.byteLength !== 200 * 8).length;
    assert.ok(resident <= 32 && resident >= 1, `${resident} resident sums`);
    assert.ok(sums.length - resident >= 8);
    for (const x of sums) {
      simd.weightedSumInto(x, 10, [Float32Array.of(1, 2, 3, 4, 5)], [2]);
      assert.deepEqual([...x.subarray(9, 16)], [0, 2, 4, 6, 8, 10, 0]);
    }
  });

  it('linear kernels reject rows, weights and ranges that do not fit', () => {
    for (const compute of [cpuCompute, createCpuCompute({ simd: false })]) {
      assert.throws(() => compute.weightedSumInto(new Float64Array(10), 0, [new Float32Array(4), new Float32Array(5)], [1, 1]), FedmmError);
      assert.throws(() => compute.weightedSumInto(new Float64Array(10), -1, [new Float32Array(4)], [1]), FedmmError);
      assert.throws(() => compute.weightedSumInto(new Float64Array(10), 0, [new Float32Array(4), new Float32Array(4)], [1]), FedmmError);
      assert.throws(() => compute.scaleInto(new Float32Array(4), new Float64Array(10), 2, 5, 1), FedmmError);
      assert.throws(() => compute.scaleInto(new Float32Array(10), new Float64Array(10), 8, 5, 1), FedmmError);
    }
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
