import { applyStep, checkPrevious } from '../server-step.js';
import { RowStore } from '../row-store.js';
import type { FinishContext, ShardAccumulator, ShardSpec } from '../types.js';

/** Computes one segment's robust aggregate from its holders' rows into out[start..start+length). */
export type SegmentRule = (holders: readonly Float32Array[], start: number, length: number, out: Float32Array) => void;

/** Accumulator of the coordinate-wise robust rules (median, trimmed mean): keeps K rows. */
export class CoordinateWiseAccumulator implements ShardAccumulator {
  private readonly store: RowStore;

  constructor(spec: ShardSpec, private readonly rule: SegmentRule) {
    this.store = new RowStore(spec);
  }

  get clientIds(): readonly string[] {
    return this.store.participation.clientIds;
  }

  add(clientId: string, elementOffset: number, values: Float32Array, weight: number): void {
    this.store.add(clientId, elementOffset, values, weight);
  }

  finish(context: FinishContext = {}): Float32Array {
    const shard = this.store.shard;
    checkPrevious(context.previous, shard.shardLength);
    this.store.seal();
    const out = new Float32Array(shard.shardLength);
    shard.segments.forEach((seg, s) => {
      const holders = this.store.holdersOf(s);
      if (holders.length > 0) this.rule(holders, seg.start, seg.length, out);
    });
    context.perturb?.(out, shard.segments);
    return applyStep(out, context.previous);
  }
}
