// Seeded inputs and plain float64 reference implementations for the strategy tests.
import assert from 'node:assert/strict';
import type { ShardAccumulator, ShardSegment } from '../types.js';

/** Deterministic uniform [0, 1) generator (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples from a uniform generator (Box-Muller). */
export function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** One client's whole-shard update and the tensors it holds. */
export interface ClientUpdate {
  readonly id: string;
  readonly weight: number;
  readonly values: Float32Array;
  /** Tensor names the client sends; all when undefined. */
  readonly holds?: ReadonlySet<string>;
}

export function holdsSegment(u: ClientUpdate, seg: ShardSegment): boolean {
  return u.holds === undefined || u.holds.has(seg.tensor);
}

/** Random updates: values N(center, scale^2), weights 1..1000 examples. */
export function randomUpdates(seed: number, k: number, length: number, opts: { center?: Float32Array; scale?: number } = {}): ClientUpdate[] {
  const rand = rng(seed);
  const normal = gaussian(rand);
  const scale = opts.scale ?? 1;
  return Array.from({ length: k }, (_, c) => {
    const values = new Float32Array(length);
    for (let i = 0; i < length; i++) values[i] = (opts.center?.[i] ?? 0) + scale * normal();
    return { id: `client-${c}`, weight: 1 + Math.floor(rand() * 1000), values };
  });
}

export interface Chunk {
  readonly clientId: string;
  readonly offset: number;
  readonly values: Float32Array;
  readonly weight: number;
}

/**
 * Cuts the updates into chunks of at most `chunkSize` over the segments each client holds
 * (a chunk may span segments), and shuffles the arrival order across clients.
 */
export function toChunks(updates: readonly ClientUpdate[], segments: readonly ShardSegment[], chunkSize: number, seed: number): Chunk[] {
  const chunks: Chunk[] = [];
  for (const u of updates) {
    let runStart = -1;
    const flush = (end: number): void => {
      for (let o = runStart; o < end; o += chunkSize) {
        const e = Math.min(end, o + chunkSize);
        chunks.push({ clientId: u.id, offset: o, values: u.values.subarray(o, e), weight: u.weight });
      }
      runStart = -1;
    };
    for (const seg of segments) {
      if (holdsSegment(u, seg)) {
        if (runStart < 0) runStart = seg.start;
      } else if (runStart >= 0) {
        flush(seg.start);
      }
    }
    const last = segments[segments.length - 1]!;
    if (runStart >= 0) flush(last.start + last.length);
  }
  const rand = rng(seed);
  for (let i = chunks.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [chunks[i], chunks[j]] = [chunks[j]!, chunks[i]!];
  }
  return chunks;
}

/** Feeds chunks to an accumulator. */
export function feed(acc: ShardAccumulator, chunks: readonly Chunk[]): void {
  for (const c of chunks) acc.add(c.clientId, c.offset, c.values, c.weight);
}

/** Segments from (tensor, length) pairs. */
export function segmentsOf(...parts: [string, number][]): ShardSegment[] {
  let start = 0;
  return parts.map(([tensor, length]) => {
    const s = { tensor, start, length };
    start += length;
    return s;
  });
}

/** float64 example-weighted mean per segment over its holders; 0 where nobody holds it. */
export function refWeightedMean(updates: readonly ClientUpdate[], segments: readonly ShardSegment[], scales?: ReadonlyMap<string, number>): Float64Array {
  const out = new Float64Array(segments.reduce((n, s) => n + s.length, 0));
  for (const seg of segments) {
    const holders = updates.filter((u) => holdsSegment(u, seg));
    const w = holders.reduce((s, u) => s + u.weight, 0);
    for (let i = seg.start; i < seg.start + seg.length; i++) {
      let s = 0;
      for (const u of holders) s += u.weight * (scales?.get(u.id) ?? 1) * u.values[i]!;
      out[i] = w > 0 ? s / w : 0;
    }
  }
  return out;
}

/** float64 per-coordinate rule over holders' values, sorted ascending. */
export function refCoordinateWise(updates: readonly ClientUpdate[], segments: readonly ShardSegment[], rule: (sorted: number[]) => number): Float64Array {
  const out = new Float64Array(segments.reduce((n, s) => n + s.length, 0));
  for (const seg of segments) {
    const holders = updates.filter((u) => holdsSegment(u, seg));
    if (holders.length === 0) continue;
    for (let i = seg.start; i < seg.start + seg.length; i++) {
      out[i] = rule(holders.map((u) => u.values[i]!).sort((a, b) => a - b));
    }
  }
  return out;
}

export const refMedian = (s: number[]): number => (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2);

export const refTrimmed = (beta: number) => (s: number[]): number => {
  const cut = Math.floor(beta * s.length);
  const kept = s.slice(cut, s.length - cut);
  return kept.reduce((a, b) => a + b, 0) / kept.length;
};

/** Asserts |a - e| <= atol + rtol * |e| everywhere, reporting the worst coordinate. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number, what = 'result'): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const excess = Math.abs(actual[i]! - expected[i]!) - (atol + rtol * Math.abs(expected[i]!));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  assert.ok(worst < 0, `${what}: coordinate ${worst} is ${actual[worst]} but the reference is ${expected[worst]} (rtol ${rtol}, atol ${atol})`);
}

/** L2 distance between two vectors, in float64. */
export function distance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s);
}
