import { IMAGE_SIZE } from '../image.js';
import { SENSOR_CHANNELS, SENSOR_STEPS } from '../sensor.js';
import type { Sample } from '../loader.js';

/** Width of each feature block; a block is all zeros (imputed) when its modality is missing. */
const IMAGE_GRID = 8;
const IMAGE_DIMS = IMAGE_GRID * IMAGE_GRID * 3 + 24 + 16;
const TEXT_DIMS = 512;
const SENSOR_STATS = 18;
const SENSOR_DIMS = SENSOR_CHANNELS * SENSOR_STATS;

/** A feature matrix with, per row, which modality blocks are present. */
export interface FeatureMatrix {
  readonly rows: number;
  readonly dims: number;
  readonly data: Float64Array;
  /** Block ranges [start, end) by modality. */
  readonly blocks: ReadonlyArray<{ readonly name: 'image' | 'text' | 'sensor'; readonly start: number; readonly end: number }>;
  /** present[row * 3 + block] = 1 when that modality is there. */
  readonly present: Uint8Array;
}

function imageFeatures(img: Float32Array, out: Float64Array, at: number): void {
  const cell = IMAGE_SIZE / IMAGE_GRID;
  let o = at;
  for (let gy = 0; gy < IMAGE_GRID; gy++) {
    for (let gx = 0; gx < IMAGE_GRID; gx++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let y = gy * cell; y < (gy + 1) * cell; y++) for (let x = gx * cell; x < (gx + 1) * cell; x++) s += img[(y * IMAGE_SIZE + x) * 3 + c]!;
        out[o++] = s / (cell * cell);
      }
    }
  }
  const n = IMAGE_SIZE * IMAGE_SIZE;
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[at + 192 + c * 8 + Math.min(7, Math.floor(img[i * 3 + c]! * 8))]! += 1 / n;
  // Edge energy on a 4x4 grid: texture (crowds, stripes) that colour statistics miss.
  const g = (x: number, y: number): number => {
    const p = (y * IMAGE_SIZE + x) * 3;
    return 0.299 * img[p]! + 0.587 * img[p + 1]! + 0.114 * img[p + 2]!;
  };
  for (let y = 0; y < IMAGE_SIZE - 1; y++) {
    for (let x = 0; x < IMAGE_SIZE - 1; x++) {
      const e = Math.abs(g(x + 1, y) - g(x, y)) + Math.abs(g(x, y + 1) - g(x, y));
      out[at + 216 + Math.floor(y / 8) * 4 + Math.floor(x / 8)]! += e / 64;
    }
  }
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Word tokens without numbers, times and reference codes, which identify a report but not its class. */
export function textTokens(text: string): string[] {
  return text.toLowerCase().split(/[^a-z0-9]+/).filter((t) => t.length > 1 && !/^\d+$/.test(t));
}

function textFeatures(text: string, out: Float64Array, at: number): void {
  const tokens = textTokens(text);
  const grams = [...tokens, ...tokens.slice(1).map((t, i) => `${tokens[i]}_${t}`)];
  for (const g of grams) out[at + (fnv1a(g) % TEXT_DIMS)]! += 1;
  let norm = 0;
  for (let i = at; i < at + TEXT_DIMS; i++) {
    out[i] = Math.log1p(out[i]!);
    norm += out[i]! ** 2;
  }
  norm = Math.sqrt(norm) || 1;
  for (let i = at; i < at + TEXT_DIMS; i++) out[i] = out[i]! / norm;
}

function sensorFeatures(sensor: Float32Array, out: Float64Array, at: number): void {
  const T = SENSOR_STEPS;
  for (let c = 0; c < SENSOR_CHANNELS; c++) {
    const x = sensor.subarray(c * T, (c + 1) * T);
    let mean = 0, min = Infinity, max = -Infinity, argmax = 0, maxJump = 0;
    for (let t = 0; t < T; t++) {
      mean += x[t]!;
      if (x[t]! < min) min = x[t]!;
      if (x[t]! > max) {
        max = x[t]!;
        argmax = t;
      }
      if (t > 0) maxJump = Math.max(maxJump, Math.abs(x[t]! - x[t - 1]!));
    }
    mean /= T;
    let v = 0, ac = 0;
    for (let t = 0; t < T; t++) v += (x[t]! - mean) ** 2;
    for (let t = 1; t < T; t++) ac += (x[t]! - mean) * (x[t - 1]! - mean);
    const std = Math.sqrt(v / T);
    const o = at + c * SENSOR_STATS;
    out[o] = mean;
    out[o + 1] = std;
    out[o + 2] = min;
    out[o + 3] = max;
    out[o + 4] = argmax / T;
    out[o + 5] = x[T - 1]! - x[0]!;
    out[o + 6] = maxJump;
    out[o + 7] = v > 0 ? ac / v : 0;
    out[o + 8] = max - mean;
    out[o + 9] = mean - min;
    for (let s = 0; s < 4; s++) {
      let m = 0, sd = 0;
      for (let t = s * 16; t < (s + 1) * 16; t++) m += x[t]!;
      m /= 16;
      for (let t = s * 16; t < (s + 1) * 16; t++) sd += (x[t]! - m) ** 2;
      out[o + 10 + s] = m;
      out[o + 14 + s] = Math.sqrt(sd / 16);
    }
  }
}

/** Hand-crafted features for the built-in classifier: colour layout, histograms and edges; hashed words; series statistics. */
export function extractFeatures(samples: readonly Sample[]): FeatureMatrix {
  const dims = IMAGE_DIMS + TEXT_DIMS + SENSOR_DIMS;
  const data = new Float64Array(samples.length * dims);
  const present = new Uint8Array(samples.length * 3);
  samples.forEach((s, r) => {
    const base = r * dims;
    if (s.image !== undefined) {
      imageFeatures(s.image, data, base);
      present[r * 3] = 1;
    }
    if (s.text !== undefined) {
      textFeatures(s.text, data, base + IMAGE_DIMS);
      present[r * 3 + 1] = 1;
    }
    if (s.sensor !== undefined) {
      sensorFeatures(s.sensor, data, base + IMAGE_DIMS + TEXT_DIMS);
      present[r * 3 + 2] = 1;
    }
  });
  return {
    rows: samples.length,
    dims,
    data,
    blocks: [
      { name: 'image', start: 0, end: IMAGE_DIMS },
      { name: 'text', start: IMAGE_DIMS, end: IMAGE_DIMS + TEXT_DIMS },
      { name: 'sensor', start: IMAGE_DIMS + TEXT_DIMS, end: dims },
    ],
    present,
  };
}
