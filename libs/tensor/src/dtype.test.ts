import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedmmError } from '@fedmm/core';
import {
  bf16BitsToF32, byteSize, decodeBf16, decodeF16, dequantizeInt8, encodeBf16, encodeF16, f16BitsToF32,
  f32ToBf16Bits, f32ToF16Bits, fromFloat32, makeTensor, quantizeInt8, toFloat32,
} from './dtype.js';

const f32 = (x: number): number => Math.fround(x);

test('f16 encodes exact values, extremes, subnormals, inf and nan', () => {
  const cases: [number, number][] = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff],
    [65520, 0x7c00], // halfway past max rounds to inf
    [65519, 0x7bff],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal goes to even (0)
    [f32(2 ** -25 * 1.0000001), 0x0001],
    [3 * 2 ** -25, 0x0002], // tie between 1 and 2 subnormal units goes to even (2)
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [1e10, 0x7c00],
  ];
  for (const [x, h] of cases) assert.equal(f32ToF16Bits(x), h, `f16(${x})`);
  assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
  assert.equal(f32ToF16Bits(NaN) & 0x7c00, 0x7c00);
  assert.notEqual(f32ToF16Bits(NaN) & 0x3ff, 0);
});

test('f16 rounds to nearest even between representable neighbours', () => {
  // 1 + 2^-11 lies exactly between 1 and 1 + 2^-10: ties to even (1).
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00);
  // 1 + 3 * 2^-11 lies between 1+2^-10 (odd) and 1+2^-9 (even): goes up.
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20), 0x3c01);
});

test('every f16 bit pattern decodes and re-encodes to itself', () => {
  for (let h = 0; h < 0x10000; h++) {
    const x = f16BitsToF32(h);
    if (Number.isNaN(x)) continue;
    assert.equal(f32ToF16Bits(x), h, `pattern ${h.toString(16)}`);
  }
  const all = new Uint16Array(0x10000).map((_, i) => i);
  const dec = decodeF16(all);
  for (let h = 0; h < 0x10000; h += 97) assert.ok(Object.is(dec[h], f32(f16BitsToF32(h))) || Number.isNaN(dec[h]!));
  assert.deepEqual([...encodeF16(new Float32Array([1, -2, 0.5]))], [0x3c00, 0xc000, 0x3800]);
});

test('bf16 rounds to nearest even and keeps inf and nan', () => {
  assert.equal(f32ToBf16Bits(1), 0x3f80);
  assert.equal(f32ToBf16Bits(-1), 0xbf80);
  // 1 + 2^-8 is a tie between 1 (even) and 1 + 2^-7: goes to 1.
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80);
  // 1 + 3 * 2^-8 is a tie between 1 + 2^-7 (odd) and 1 + 2^-6: goes up.
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
  assert.equal(f32ToBf16Bits(Infinity), 0x7f80);
  assert.equal(f32ToBf16Bits(3.4028234663852886e38), 0x7f80); // max f32 rounds past max bf16
  assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
  assert.equal(bf16BitsToF32(0x4049), 3.140625);
  const src = new Float32Array([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, NaN, -Infinity, -0]);
  const enc = encodeBf16(src);
  assert.deepEqual([...enc].slice(0, 3), [0x3f80, 0x3f80, 0x3f82]);
  assert.equal(enc[4], 0xff80);
  const back = decodeBf16(enc);
  assert.ok(Number.isNaN(back[3]!));
  assert.ok(Object.is(back[5], -0));
});

test('int8 quantization is symmetric with scale max/127 and error at most scale/2', () => {
  const src = new Float32Array([0.5, -1.27, 0.01, 1.27, 0]);
  const { values, scale } = quantizeInt8(src);
  assert.ok(Math.abs(scale - 0.01) < 1e-9);
  assert.deepEqual([...values], [50, -127, 1, 127, 0]);
  const back = dequantizeInt8(values, scale);
  for (let i = 0; i < src.length; i++) assert.ok(Math.abs(back[i]! - src[i]!) <= scale / 2 + 1e-7);
  assert.equal(quantizeInt8(new Float32Array(3)).scale, 1);
  assert.throws(() => quantizeInt8(new Float32Array([1, NaN])), (e) => isFedmmError(e) && e.code === 'INVALID_ARGUMENT');
  assert.throws(() => dequantizeInt8(values, 0), isFedmmError);
});

test('fromFloat32 / toFloat32 round-trip each parameter dtype within its precision', () => {
  const src = new Float32Array([0.1, -0.25, 3, 1e-3]);
  for (const [dtype, tol] of [['F32', 0], ['F16', 1e-3], ['BF16', 1e-2], ['I8', 3 / 127]] as const) {
    const t = fromFloat32(src, [2, 2], dtype);
    assert.equal(t.dtype, dtype);
    const back = toFloat32(t);
    for (let i = 0; i < src.length; i++) assert.ok(Math.abs(back[i]! - src[i]!) <= tol * Math.max(1, Math.abs(src[i]!)), `${dtype}[${i}]`);
  }
});

test('makeTensor rejects data of the wrong type or length, and sizes are computed from shapes', () => {
  assert.throws(() => makeTensor('F32', [2], new Float64Array(2)), /Float32Array/);
  assert.throws(() => makeTensor('F32', [3], new Float32Array(2)), /3 elements/);
  assert.throws(() => makeTensor('F32', [2], new Float32Array(2), 1), /only I8/);
  assert.throws(() => makeTensor('I8', [1], new Int8Array(1), -1), /scale/);
  assert.equal(byteSize('BF16', [3, 4]), 24);
  assert.equal(byteSize('F64', []), 8);
  assert.equal(byteSize('I8', [0, 5]), 0);
  assert.throws(() => byteSize('F32', [1.5]), isFedmmError);
});
