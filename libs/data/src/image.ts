import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { dataLoss } from '@fedmm/core';

/** Side of the square image the model consumes. */
export const IMAGE_SIZE = 32;

/** An 8-bit RGB image, row-major, 3 bytes a pixel. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** Images beyond this are refused before decoding: the model sees 32x32, and a bomb must not exhaust memory. */
const MAX_PIXELS = 40_000_000;

export type ImageFormat = 'png' | 'jpeg';

/** Recognises PNG and JPEG by their magic bytes, whatever the file is called. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  return undefined;
}

function rgbaToRgb(rgba: Uint8Array, width: number, height: number): Uint8Array {
  // Alpha is dropped rather than composited, as common image pipelines do when converting to RGB.
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < out.length; i += 4, j += 3) {
    out[j] = rgba[i] as number;
    out[j + 1] = rgba[i + 1] as number;
    out[j + 2] = rgba[i + 2] as number;
  }
  return out;
}

/** Decodes a PNG or JPEG file's bytes to RGB; `source` names the file in errors. */
export function decodeImage(bytes: Uint8Array, source: string): RgbImage {
  const format = sniffImageFormat(bytes);
  if (format === undefined) {
    throw dataLoss(`${source}: is neither a PNG nor a JPEG (unrecognised header); re-export the image or drop the sample`, { source });
  }
  try {
    if (format === 'png') {
      if (bytes.length >= 24) {
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        const w = view.getUint32(16), h = view.getUint32(20);
        if (w * h > MAX_PIXELS) throw new Error(`${w}x${h} pixels exceeds the limit of ${MAX_PIXELS}`);
      }
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return { width: png.width, height: png.height, data: rgbaToRgb(png.data, png.width, png.height) };
    }
    const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: MAX_PIXELS / 1e6, maxMemoryUsageInMB: 512 });
    if (img.width === 0 || img.height === 0) throw new Error('image has no pixels');
    return { width: img.width, height: img.height, data: rgbaToRgb(img.data, img.width, img.height) };
  } catch (e) {
    if (e instanceof Error && e.name === 'FedmmError') throw e;
    throw dataLoss(`${source}: corrupt ${format.toUpperCase()} (${(e as Error).message}); re-export the image or drop the sample`, { source });
  }
}

function withAlpha(img: RgbImage): Buffer {
  const rgba = Buffer.alloc(img.width * img.height * 4);
  for (let i = 0, j = 0; i < img.data.length; i += 3, j += 4) {
    rgba[j] = img.data[i] as number;
    rgba[j + 1] = img.data[i + 1] as number;
    rgba[j + 2] = img.data[i + 2] as number;
    rgba[j + 3] = 255;
  }
  return rgba;
}

/** Encodes RGB as an 8-bit truecolour PNG (deterministic bytes for the same pixels). */
export function encodePng(img: RgbImage): Buffer {
  const png = new PNG({ width: img.width, height: img.height, colorType: 2, inputColorType: 6, bitDepth: 8 });
  png.data = withAlpha(img);
  return PNG.sync.write(png, { colorType: 2, inputColorType: 6, deflateLevel: 9 });
}

/** Encodes RGB as a baseline JPEG at the given quality (1-100). */
export function encodeJpeg(img: RgbImage, quality = 90): Buffer {
  return jpeg.encode({ width: img.width, height: img.height, data: withAlpha(img) }, quality).data;
}

interface AxisWeights {
  readonly start: Int32Array;
  readonly count: Int32Array;
  readonly weights: Float32Array[];
}

/** Per-output-pixel source weights along one axis: box (area) filter down, bilinear up. */
function axisWeights(inSize: number, outSize: number): AxisWeights {
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights: Float32Array[] = [];
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    if (scale >= 1) {
      const lo = o * scale, hi = (o + 1) * scale;
      const i0 = Math.floor(lo), i1 = Math.min(inSize, Math.ceil(hi));
      const w = new Float32Array(i1 - i0);
      for (let i = i0; i < i1; i++) w[i - i0] = (Math.min(hi, i + 1) - Math.max(lo, i)) / scale;
      start[o] = i0;
      count[o] = i1 - i0;
      weights.push(w);
    } else {
      const src = Math.min(Math.max((o + 0.5) * scale - 0.5, 0), inSize - 1);
      const i0 = Math.floor(src);
      const frac = src - i0;
      const i1 = Math.min(i0 + 1, inSize - 1);
      start[o] = i0;
      count[o] = i1 > i0 ? 2 : 1;
      weights.push(i1 > i0 ? Float32Array.of(1 - frac, frac) : Float32Array.of(1));
    }
  }
  return { start, count, weights };
}

/** Resizes an RGB image to width x height as floats in [0,1], HWC; area averaging down, bilinear up. */
export function resizeToFloat(img: RgbImage, width: number, height: number): Float32Array {
  const ax = axisWeights(img.width, width);
  const ay = axisWeights(img.height, height);
  // Horizontal pass into a float buffer of img.height x width, then vertical.
  const tmp = new Float32Array(img.height * width * 3);
  for (let y = 0; y < img.height; y++) {
    const row = y * img.width * 3;
    for (let x = 0; x < width; x++) {
      const s = ax.start[x] as number, n = ax.count[x] as number, w = ax.weights[x] as Float32Array;
      let r = 0, g = 0, b = 0;
      for (let k = 0; k < n; k++) {
        const p = row + (s + k) * 3, wk = w[k] as number;
        r += wk * (img.data[p] as number);
        g += wk * (img.data[p + 1] as number);
        b += wk * (img.data[p + 2] as number);
      }
      const q = (y * width + x) * 3;
      tmp[q] = r;
      tmp[q + 1] = g;
      tmp[q + 2] = b;
    }
  }
  const out = new Float32Array(height * width * 3);
  for (let y = 0; y < height; y++) {
    const s = ay.start[y] as number, n = ay.count[y] as number, w = ay.weights[y] as Float32Array;
    for (let x = 0; x < width; x++) {
      let r = 0, g = 0, b = 0;
      for (let k = 0; k < n; k++) {
        const p = ((s + k) * width + x) * 3, wk = w[k] as number;
        r += wk * (tmp[p] as number);
        g += wk * (tmp[p + 1] as number);
        b += wk * (tmp[p + 2] as number);
      }
      const q = (y * width + x) * 3;
      out[q] = Math.min(1, Math.max(0, r / 255));
      out[q + 1] = Math.min(1, Math.max(0, g / 255));
      out[q + 2] = Math.min(1, Math.max(0, b / 255));
    }
  }
  return out;
}

/** The model's image input: 32x32x3 HWC floats in [0,1]. */
export function toModelImage(img: RgbImage): Float32Array {
  return resizeToFloat(img, IMAGE_SIZE, IMAGE_SIZE);
}

/** Converts HWC floats in [0,1] back to 8-bit RGB (for thumbnails and synthesis). */
export function floatToRgb(data: Float32Array, width: number, height: number): RgbImage {
  const out = new Uint8Array(width * height * 3);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(Math.min(1, Math.max(0, data[i] as number)) * 255);
  return { width, height, data: out };
}
