import { invalidArgument } from '@fedmm/core';
import type { ShardSegment, ShardSpec } from './types.js';

/** A validated shard geometry with fast lookup of the segments a chunk touches. */
export class CompiledShard {
  readonly shardLength: number;
  readonly segments: readonly ShardSegment[];
  private readonly starts: Int32Array;

  constructor(spec: ShardSpec) {
    const { shardLength } = spec;
    if (!Number.isSafeInteger(shardLength) || shardLength <= 0) {
      throw invalidArgument(`shardLength must be a positive integer, got ${shardLength}; pass the number of float32 elements in the shard`);
    }
    const segments = spec.segments ?? [{ tensor: '*', start: 0, length: shardLength }];
    if (segments.length === 0) {
      throw invalidArgument('segments is empty; omit it for a single-tensor shard or list every tensor piece in the shard');
    }
    let expected = 0;
    for (const s of segments) {
      if (s.start !== expected || !Number.isSafeInteger(s.length) || s.length <= 0) {
        throw invalidArgument(
          `segment for tensor '${s.tensor}' at [${s.start}, ${s.start + s.length}) does not follow the previous one at ${expected}; ` +
            'segments must be sorted, non-empty and tile the shard without gaps or overlaps',
          { tensor: s.tensor, start: s.start, length: s.length },
        );
      }
      expected += s.length;
    }
    if (expected !== shardLength) {
      throw invalidArgument(`segments cover ${expected} elements but shardLength is ${shardLength}; they must tile the whole shard`);
    }
    this.shardLength = shardLength;
    this.segments = Object.freeze(segments.map((s) => Object.freeze({ ...s })));
    this.starts = Int32Array.from(segments, (s) => s.start);
  }

  /** Index of the segment holding coordinate `i`. */
  segmentAt(i: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((this.starts[mid] as number) <= i) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Throws unless [offset, offset + length) lies inside the shard. */
  checkRange(clientId: string, offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > this.shardLength) {
      throw invalidArgument(
        `chunk from client '${clientId}' covers [${offset}, ${offset + length}) outside the shard of ${this.shardLength} elements; ` +
          'check the chunk offset and the shard geometry the worker was given',
        { clientId, offset, length, shardLength: this.shardLength },
      );
    }
  }
}
