import { failedPrecondition, invalidArgument } from '@fedmm/core';
import type { CompiledShard } from './shard-spec.js';

/** What the accumulator knows about one client in one shard. */
export interface ClientEntry {
  readonly clientId: string;
  readonly index: number;
  readonly weight: number;
  /** Elements received per segment. */
  readonly covered: Float64Array;
}

/**
 * Tracks which client sent which tensor pieces, so that each segment is averaged over its
 * holders only, and a client that sent part of a tensor is caught instead of silently diluting it.
 */
export class Participation {
  private readonly byId = new Map<string, ClientEntry>();
  private readonly order: ClientEntry[] = [];
  /** Sum of holders' weights per segment. */
  readonly weightSums: Float64Array;

  constructor(private readonly shard: CompiledShard) {
    this.weightSums = new Float64Array(shard.segments.length);
  }

  get clients(): readonly ClientEntry[] {
    return this.order;
  }

  get clientIds(): string[] {
    return this.order.map((c) => c.clientId);
  }

  get(clientId: string): ClientEntry | undefined {
    return this.byId.get(clientId);
  }

  /** Records a chunk and returns its client's entry. */
  record(clientId: string, offset: number, length: number, weight: number): ClientEntry {
    if (!(Number.isFinite(weight) && weight > 0)) {
      throw invalidArgument(`client '${clientId}' sent weight ${weight}; the weight is its number of training examples and must be positive`, { clientId, weight });
    }
    this.shard.checkRange(clientId, offset, length);
    let entry = this.byId.get(clientId);
    if (entry === undefined) {
      entry = { clientId, index: this.order.length, weight, covered: new Float64Array(this.shard.segments.length) };
      this.byId.set(clientId, entry);
      this.order.push(entry);
    } else if (entry.weight !== weight) {
      throw invalidArgument(
        `client '${clientId}' sent weight ${weight} after ${entry.weight} in the same shard; every chunk of one update must carry the same number of examples`,
        { clientId, weight, previous: entry.weight },
      );
    }
    if (length === 0) return entry;
    const segs = this.shard.segments;
    const end = offset + length;
    for (let s = this.shard.segmentAt(offset); s < segs.length; s++) {
      const seg = segs[s]!;
      if (seg.start >= end) break;
      const overlap = Math.min(end, seg.start + seg.length) - Math.max(offset, seg.start);
      const before = entry.covered[s]!;
      if (before + overlap > seg.length) {
        throw invalidArgument(
          `client '${clientId}' sent more elements of tensor '${seg.tensor}' than the ${seg.length} in this shard; a chunk was delivered twice — drop duplicates by (client, round, shard, seq) before adding`,
          { clientId, tensor: seg.tensor },
        );
      }
      if (before === 0) this.weightSums[s] = this.weightSums[s]! + weight;
      entry.covered[s] = before + overlap;
    }
    return entry;
  }

  /** Throws if some client sent only part of a tensor piece: its mean would be wrong. */
  assertComplete(): void {
    const segs = this.shard.segments;
    for (const c of this.order) {
      for (let s = 0; s < segs.length; s++) {
        const got = c.covered[s]!;
        const seg = segs[s]!;
        if (got !== 0 && got !== seg.length) {
          throw failedPrecondition(
            `client '${c.clientId}' sent ${got} of the ${seg.length} elements of tensor '${seg.tensor}' in this shard; ` +
              'wait for its missing chunks or exclude the client from the round before sealing',
            { clientId: c.clientId, tensor: seg.tensor, received: got, expected: seg.length },
          );
        }
      }
    }
  }

  /** Whether `client` holds segment `s` (sent all of it). */
  holds(client: ClientEntry, s: number): boolean {
    return client.covered[s]! > 0;
  }
}
