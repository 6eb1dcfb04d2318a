import { randomInt } from 'node:crypto';
import { FedmmError } from '@fedmm/core';

/** How a round's clients are split into secure-aggregation groups. */
export interface GroupSettings {
  /** Wanted members per group (at least `threshold`). */
  readonly size: number;
  readonly threshold: number;
  /** The task's secagg_num_shares (0: a complete graph in each group). */
  readonly numShares: number;
}

/**
 * How many groups `n` clients form: about `n / size` (each at least `size`), and more when a
 * complete graph needs the threshold to stay a majority of every group (sizes up to 2t - 1).
 */
export function groupCount(n: number, s: GroupSettings): number {
  if (n < s.threshold) {
    throw new FedmmError('FAILED_PRECONDITION', `${n} selected clients cannot form a secure-aggregation group of at least the threshold ${s.threshold}; select more clients or lower secagg_threshold`);
  }
  let m = Math.max(1, Math.floor(n / s.size));
  if (s.numShares === 0) m = Math.max(m, Math.ceil(n / (2 * s.threshold - 1)));
  // Never so many groups that one falls below the threshold.
  return Math.min(m, Math.floor(n / s.threshold));
}

/**
 * Partitions the selected clients into disjoint groups of nearly equal size (sizes differ by at
 * most one, each at least the threshold), drawn afresh with node:crypto randomness: a group is
 * unpredictable to its members, and over rounds every company shares groups with many others, so
 * cumulative values tell companies apart. Groups are named g1, g2 ... and their members sorted.
 */
export function drawGroups(clients: readonly string[], s: GroupSettings): { id: string; members: string[] }[] {
  const order = [...new Set(clients)];
  const m = groupCount(order.length, s);
  for (let i = order.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const groups: string[][] = Array.from({ length: m }, () => []);
  order.forEach((c, i) => groups[i % m]!.push(c));
  return groups.map((members, i) => ({ id: `g${i + 1}`, members: members.sort() }));
}
