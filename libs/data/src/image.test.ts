import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FedmmError } from '@fedmm/core';
import { decodeImage, encodeJpeg, encodePng, resizeToFloat, toModelImage, type RgbImage } from './image.js';

function gradientImage(w: number, h: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set([(x * 255) / (w - 1), (y * 255) / (h - 1), 128], (y * w + x) * 3);
  return { width: w, height: h, data };
}

test('PNG round-trips pixel for pixel and JPEG decodes close to the original', () => {
  const img = gradientImage(40, 24);
  const png = decodeImage(encodePng(img), 'a.png');
  assert.equal(png.width, 40);
  assert.deepEqual(png.data, img.data);
  const jpg = decodeImage(encodeJpeg(img, 95), 'a.jpg');
  assert.equal(jpg.height, 24);
  let err = 0;
  for (let i = 0; i < img.data.length; i++) err += Math.abs(jpg.data[i]! - img.data[i]!);
  assert.ok(err / img.data.length < 4, `mean JPEG error ${err / img.data.length}`);
});

test('a truncated PNG, a truncated JPEG and a non-image are DATA_LOSS naming the file', () => {
  const png = encodePng(gradientImage(32, 32));
  const jpg = encodeJpeg(gradientImage(32, 32));
  for (const [bytes, name, pattern] of [
    [png.subarray(0, Math.floor(png.length / 2)), 'cut.png', /cut\.png: corrupt PNG/],
    [jpg.subarray(0, 40), 'cut.jpg', /cut\.jpg: corrupt JPEG/],
    [Buffer.from('hello world'), 'text.png', /text\.png: is neither a PNG nor a JPEG/],
  ] as const) {
    assert.throws(() => decodeImage(bytes, name), (e: unknown) => e instanceof FedmmError && e.code === 'DATA_LOSS' && pattern.test(e.message));
  }
});

test('resizing to the model input gives 32x32x3 in [0,1], averages areas and keeps flat colour flat', () => {
  const big = gradientImage(97, 61);
  const out = toModelImage(big);
  assert.equal(out.length, 32 * 32 * 3);
  assert.ok(out.every((v) => v >= 0 && v <= 1));
  assert.ok(out[0]! < 0.05 && out[(31 * 32 + 31) * 3]! > 0.95, 'corners keep the gradient');
  const flat: RgbImage = { width: 7, height: 5, data: new Uint8Array(7 * 5 * 3).fill(51) };
  assert.ok(resizeToFloat(flat, 32, 32).every((v) => Math.abs(v - 0.2) < 1e-6), 'upscaling a flat image stays flat');
  const checker: RgbImage = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3) };
  for (let i = 0; i < 64 * 64; i++) checker.data.fill(((i % 64) + Math.floor(i / 64)) % 2 ? 255 : 0, i * 3, i * 3 + 3);
  assert.ok(toModelImage(checker).every((v) => Math.abs(v - 0.5) < 1e-6), 'a 2:1 area average of a checkerboard is mid-grey');
});
