import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FedmmError } from '@fedmm/core';
import { encodeJpeg, encodePng } from './image.js';
import { loadSamples } from './loader.js';

const solid = (w: number, h: number, rgb: [number, number, number]) => ({ width: w, height: h, data: new Uint8Array(w * h * 3).map((_, i) => rgb[i % 3]!) });

async function fixture(lines: object[]): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fedmm-loader-'));
  await mkdir(path.join(dir, 'img'));
  await writeFile(path.join(dir, 'img/a.png'), encodePng(solid(50, 40, [255, 0, 0])));
  await writeFile(path.join(dir, 'img/b.jpg'), encodeJpeg(solid(16, 16, [0, 0, 255]), 95));
  await writeFile(path.join(dir, 's.csv'), 'temperature,current,vibration\n' + Array.from({ length: 128 }, (_, t) => `${t},${-t},1`).join('\n') + '\n');
  await writeFile(path.join(dir, 'manifest.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  return dir;
}

test('loads images, text and sensors into the model shapes with label indices', async () => {
  const dir = await fixture([
    { id: 'p', image: 'img/a.png', text: 'fire', label: 'fire_smoke' },
    { id: 'j', image: 'img/b.jpg', sensor: [[0, 1, 2, 3], [1, 1, 1, 1], [0, 0, 0, 8]], label: 'water_leak' },
    { id: 'c', sensor: { path: 's.csv' }, label: 'fire_smoke' },
  ]);
  const ds = await loadSamples(dir, { classes: ['water_leak', 'fire_smoke'] });
  assert.deepEqual(ds.samples.map((s) => [s.id, s.label]), [['p', 1], ['j', 0], ['c', 1]]);
  assert.deepEqual(ds.modalities, { image: true, text: true, sensor: true });
  const [p, j, c] = ds.samples;
  assert.equal(p!.image!.length, 32 * 32 * 3);
  assert.ok(Math.abs(p!.image![0]! - 1) < 1e-6 && p!.image![1] === 0, 'red stays red, HWC order');
  assert.ok(j!.image![2]! > 0.95, 'JPEG decoded');
  assert.equal(p!.sensor, undefined);
  assert.equal(j!.sensor!.length, 3 * 64);
  assert.equal(j!.sensor![0], 0);
  assert.ok(Math.abs(j!.sensor![63]! - 3) < 1e-6, 'resampled linearly over the same time span');
  assert.ok(Math.abs(j!.sensor![64 * 2 + 63]! - 8) < 1e-6, 'channel-major');
  assert.equal(c!.sensor![63], 127, 'CSV rows are steps, columns are channels');
  assert.equal(c!.sensor![64 + 63], -127);
});

test('pad-crop keeps the latest steps; a wrong channel count fails unless padding is allowed', async () => {
  const dir = await fixture([{ sensor: [[1, 2, 3]], label: 'a' }]);
  await assert.rejects(loadSamples(dir), (e: unknown) => e instanceof FedmmError && /manifest\.jsonl:1: sensor series has 1 channels but the model expects 3/.test(e.message));
  const ds = await loadSamples(dir, { sensorChannels: 'pad-truncate', sensorLength: 'pad-crop' });
  const s = ds.samples[0]!.sensor!;
  assert.deepEqual([s[0], s[60], s[61], s[62], s[63], s[64 + 63]], [0, 0, 1, 2, 3, 0]);
});

test('unknown labels and unreadable files fail with file and line, or are skipped and reported', async () => {
  const dir = await fixture([
    { image: 'img/a.png', label: 'a' },
    { image: 'img/missing.png', label: 'a' },
    { text: 't', label: 'nope' },
  ]);
  await assert.rejects(loadSamples(dir, { classes: ['a'] }), (e: unknown) => e instanceof FedmmError && /manifest\.jsonl:2: image 'img\/missing\.png' cannot be read/.test(e.message));
  const ds = await loadSamples(dir, { classes: ['a'], onInvalid: 'skip' });
  assert.equal(ds.samples.length, 1);
  assert.deepEqual(ds.skipped.map((s) => [s.line, s.field]), [[2, 'image'], [3, 'label']]);
});
