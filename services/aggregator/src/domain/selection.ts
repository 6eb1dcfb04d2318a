import { createHash } from 'node:crypto';

/**
 * Chooses a round's participants: all members, or a sampled fraction bounded by min and max. The
 * sample is derived from sha256(task, round, attempt), so anyone holding the audit trail can
 * recompute it.
 */
export function selectClients(members: readonly string[], opts: { fraction: number; minClients: number; maxClients: number; seed: string }): string[] {
  const sorted = [...new Set(members)].sort();
  let n = opts.fraction >= 1 || opts.fraction <= 0 ? sorted.length : Math.ceil(sorted.length * opts.fraction);
  n = Math.max(n, Math.min(opts.minClients, sorted.length));
  if (opts.maxClients > 0) n = Math.min(n, opts.maxClients);
  if (n >= sorted.length) return sorted;
  const ranked = sorted.map((m) => ({ m, r: createHash('sha256').update(`${opts.seed}\n${m}`).digest('hex') }));
  ranked.sort((a, b) => (a.r < b.r ? -1 : a.r > b.r ? 1 : 0));
  return ranked.slice(0, n).map((x) => x.m).sort();
}
