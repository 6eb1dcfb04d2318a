import { failedPrecondition } from '@fedmm/core';
import { Participation } from './participation.js';
import { CompiledShard } from './shard-spec.js';
import type { ShardSpec } from './types.js';

/**
 * Keeps every client's values of one shard (one float32 row per client, zeros where it sent
 * nothing): what coordinate-wise and distance-based robust rules need. Memory O(K x shard).
 */
export class RowStore {
  readonly shard: CompiledShard;
  readonly participation: Participation;
  private readonly rows: Float32Array[] = [];
  private sealed = false;

  constructor(spec: ShardSpec) {
    this.shard = new CompiledShard(spec);
    this.participation = new Participation(this.shard);
  }

  add(clientId: string, offset: number, values: Float32Array, weight: number): void {
    if (this.sealed) {
      throw failedPrecondition(`chunk from client '${clientId}' arrived after the shard was finished; it belongs to a sealed round and must be dropped`, { clientId });
    }
    const entry = this.participation.record(clientId, offset, values.length, weight);
    let row = this.rows[entry.index];
    if (row === undefined) {
      row = new Float32Array(this.shard.shardLength);
      this.rows[entry.index] = row;
    }
    row.set(values, offset);
  }

  /** Stops accepting chunks and checks every client sent whole tensor pieces. */
  seal(): void {
    if (!this.sealed) {
      this.sealed = true;
      this.participation.assertComplete();
    }
  }

  /** All rows, in client arrival order. */
  allRows(): readonly Float32Array[] {
    return this.rows;
  }

  /** Rows of the clients that sent segment `s`. */
  holdersOf(s: number): Float32Array[] {
    const out: Float32Array[] = [];
    for (const c of this.participation.clients) if (this.participation.holds(c, s)) out.push(this.rows[c.index]!);
    return out;
  }
}
