import { createHash } from 'node:crypto';
import { resizeToFloat, type RgbImage } from '../image.js';

/** A 64-bit perceptual hash as two 32-bit halves (fast Hamming distance) and as hex. */
export interface PerceptualHash {
  readonly hi: number;
  readonly lo: number;
  readonly hex: string;
}

const DCT_N = 32;
const DCT_K = 8;
const COS = (() => {
  const t = new Float64Array(DCT_K * DCT_N);
  for (let k = 0; k < DCT_K; k++) for (let n = 0; n < DCT_N; n++) t[k * DCT_N + n] = Math.cos((Math.PI * (2 * n + 1) * k) / (2 * DCT_N));
  return t;
})();

/**
 * pHash: grayscale at 32x32, 2-D DCT, the 8x8 lowest frequencies compared with their median.
 * Robust to brightness, grain and recompression, which is what separates near from exact copies.
 */
export function perceptualHash(img: RgbImage): PerceptualHash {
  const rgb = resizeToFloat(img, DCT_N, DCT_N);
  const gray = new Float64Array(DCT_N * DCT_N);
  for (let i = 0; i < gray.length; i++) gray[i] = 0.299 * rgb[i * 3]! + 0.587 * rgb[i * 3 + 1]! + 0.114 * rgb[i * 3 + 2]!;
  const rows = new Float64Array(DCT_N * DCT_K);
  for (let y = 0; y < DCT_N; y++) {
    for (let k = 0; k < DCT_K; k++) {
      let s = 0;
      for (let x = 0; x < DCT_N; x++) s += gray[y * DCT_N + x]! * COS[k * DCT_N + x]!;
      rows[y * DCT_K + k] = s;
    }
  }
  const coef = new Float64Array(DCT_K * DCT_K);
  for (let ky = 0; ky < DCT_K; ky++) {
    for (let kx = 0; kx < DCT_K; kx++) {
      let s = 0;
      for (let y = 0; y < DCT_N; y++) s += rows[y * DCT_K + kx]! * COS[ky * DCT_N + y]!;
      coef[ky * DCT_K + kx] = s;
    }
  }
  const ac = Array.from(coef.subarray(1)).sort((a, b) => a - b);
  const median = (ac[31]! + ac[32]!) / 2;
  let hi = 0, lo = 0;
  for (let i = 0; i < 64; i++) {
    if (coef[i]! > median) {
      if (i < 32) hi |= 1 << (31 - i);
      else lo |= 1 << (63 - i);
    }
  }
  hi >>>= 0;
  lo >>>= 0;
  return { hi, lo, hex: hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0') };
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** Number of differing bits between two perceptual hashes. */
export function hammingDistance(a: PerceptualHash, b: PerceptualHash): number {
  return popcount32((a.hi ^ b.hi) >>> 0) + popcount32((a.lo ^ b.lo) >>> 0);
}

/** sha256 of decoded pixels: the same picture re-encoded is still an exact copy. */
export function pixelDigest(img: RgbImage): string {
  return createHash('sha256').update(`${img.width}x${img.height}:`).update(img.data).digest('hex');
}

/** Text as compared for duplicates: case, spacing and punctuation runs do not matter. */
export function normalizeText(text: string): string {
  return text.normalize('NFKC').toLowerCase().replace(/[^\p{L}\p{N}#]+/gu, ' ').trim();
}

/** Character trigrams of normalised text. */
export function trigrams(normalized: string): Set<string> {
  const s = ` ${normalized} `;
  const out = new Set<string>();
  for (let i = 0; i + 3 <= s.length; i++) out.add(s.slice(i, i + 3));
  return out;
}

/** Jaccard similarity of two sets. */
export function jaccard(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
  if (a.size === 0 && b.size === 0) return 1;
  let inter = 0;
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  for (const x of small) if (large.has(x)) inter++;
  return inter / (a.size + b.size - inter);
}

/** Relative L2 distance of two equally shaped series (0 = identical). */
export function seriesDistance(a: Float32Array, b: Float32Array): number {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    na += a[i]! ** 2;
    nb += b[i]! ** 2;
  }
  return Math.sqrt(d) / (Math.sqrt(Math.max(na, nb)) + 1e-9);
}
