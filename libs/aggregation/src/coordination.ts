import { invalidArgument } from '@fedmm/core';
import type { PartialDistances } from './types.js';

/** Pairwise squared distances over the whole update, summed across shards. */
export interface GlobalDistances {
  readonly clientIds: readonly string[];
  /** Row-major K x K. */
  readonly squared: Float64Array;
}

/**
 * Sums the shards' partial distances. A client missing from a shard sent nothing there, which
 * counts as zeros: its distance to client a in that shard is a's squared norm there.
 */
export function sumPartialDistances(partials: readonly PartialDistances[]): GlobalDistances {
  const ids: string[] = [];
  const index = new Map<string, number>();
  for (const p of partials) {
    for (const id of p.clientIds) {
      if (!index.has(id)) {
        index.set(id, ids.length);
        ids.push(id);
      }
    }
  }
  const k = ids.length;
  const total = new Float64Array(k * k);
  for (const p of partials) {
    const pk = p.clientIds.length;
    if (p.squared.length !== pk * pk || p.squaredNorms.length !== pk) {
      throw invalidArgument(`partial distances for ${pk} clients have ${p.squared.length} distances and ${p.squaredNorms.length} norms; expected ${pk * pk} and ${pk}`);
    }
    const present = new Uint8Array(k);
    const map = p.clientIds.map((id) => index.get(id)!);
    for (const g of map) present[g] = 1;
    for (let a = 0; a < pk; a++) {
      const ga = map[a]!;
      for (let b = 0; b < pk; b++) total[ga * k + map[b]!]! += p.squared[a * pk + b]!;
      for (let g = 0; g < k; g++) {
        if (present[g] === 0) {
          total[ga * k + g]! += p.squaredNorms[a]!;
          total[g * k + ga]! += p.squaredNorms[a]!;
        }
      }
    }
  }
  return { clientIds: ids, squared: total };
}

/** Options of the Krum selection. */
export interface KrumSelectOptions {
  /** Number of Byzantine clients tolerated (f). */
  readonly byzantine: number;
  /** Clients to keep: 1 for Krum, m > 1 for Multi-Krum. */
  readonly keep: number;
}

/**
 * Krum / Multi-Krum selection (Blanchard et al. 2017): each client's score is the sum of its
 * squared distances to its max(1, n - f - 2) nearest others; the `keep` lowest scores win.
 */
export function selectKrum(distances: GlobalDistances, options: KrumSelectOptions): string[] {
  const n = distances.clientIds.length;
  const { byzantine, keep } = options;
  if (!Number.isInteger(byzantine) || byzantine < 0) throw invalidArgument(`byzantine must be an integer >= 0, got ${byzantine}`);
  if (!Number.isInteger(keep) || keep < 1) throw invalidArgument(`keep must be an integer >= 1, got ${keep}`);
  if (n === 0) throw invalidArgument('Krum needs at least one client; the round has no updates');
  if (keep > n) throw invalidArgument(`Multi-Krum asked to keep ${keep} clients but only ${n} sent updates; lower keep or wait for more clients`);
  const closest = Math.max(1, n - byzantine - 2);
  const scores = new Float64Array(n);
  const others = new Float64Array(Math.max(0, n - 1));
  for (let i = 0; i < n; i++) {
    let j = 0;
    for (let b = 0; b < n; b++) if (b !== i) others[j++] = distances.squared[i * n + b]!;
    others.sort();
    let s = 0;
    for (let c = 0; c < Math.min(closest, others.length); c++) s += others[c]!;
    scores[i] = s;
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]! || a - b);
  return order.slice(0, keep).map((i) => distances.clientIds[i]!);
}

/** Each client's L2 norm over the whole update from the shards' partial squared norms. */
export function combineSquaredNorms(partials: Iterable<ReadonlyMap<string, number>>): Map<string, number> {
  const sums = new Map<string, number>();
  for (const p of partials) for (const [id, s] of p) sums.set(id, (sums.get(id) ?? 0) + s);
  const norms = new Map<string, number>();
  for (const [id, s] of sums) norms.set(id, Math.sqrt(s));
  return norms;
}

/** Scale factor min(1, maxNorm / norm) per client: updates longer than maxNorm are shrunk onto it. */
export function clippingScales(norms: ReadonlyMap<string, number>, maxNorm: number): Map<string, number> {
  if (!(Number.isFinite(maxNorm) && maxNorm > 0)) throw invalidArgument(`maxNorm must be a positive number, got ${maxNorm}`);
  const scales = new Map<string, number>();
  for (const [id, norm] of norms) scales.set(id, norm > maxNorm ? maxNorm / norm : 1);
  return scales;
}
