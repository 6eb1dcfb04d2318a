import { createHmac } from 'node:crypto';
import { invalidArgument } from '@fedmm/core';

/**
 * The SecAgg+ neighbour graph: participants sit on a ring ordered by HMAC-SHA256(roundSeed, id),
 * a permutation nobody can steer without knowing the seed in advance, and each is joined to the
 * (numShares - 1) / 2 clients on either side; with numShares >= n the graph is complete.
 * Returns each participant's neighbours, sorted, never including itself.
 */
export function neighbourGraph(
  participants: readonly string[],
  roundSeed: Uint8Array,
  numShares: number,
): Map<string, readonly string[]> {
  const n = participants.length;
  if (new Set(participants).size !== n) {
    throw invalidArgument('neighbour graph needs unique participant ids');
  }
  const graph = new Map<string, readonly string[]>();
  if (numShares >= n) {
    const all = [...participants].sort();
    for (const p of all) graph.set(p, Object.freeze(all.filter((q) => q !== p)));
    return graph;
  }
  if (numShares < 3 || numShares % 2 === 0) {
    throw invalidArgument(`a ring neighbour graph needs an odd numShares >= 3, got ${numShares}`);
  }
  const ring = participants
    .map((id) => ({ id, key: createHmac('sha256', roundSeed).update(id, 'utf8').digest('hex') }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : 1))
    .map((e) => e.id);
  const half = (numShares - 1) / 2;
  ring.forEach((id, pos) => {
    const mine: string[] = [];
    for (let d = 1; d <= half; d++) {
      mine.push(ring[(pos + d) % n]!, ring[(pos - d + n) % n]!);
    }
    graph.set(id, Object.freeze(mine.sort()));
  });
  return graph;
}
