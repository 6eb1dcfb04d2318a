import { invalidArgument } from '@fedmm/core';
import type { ShardSegment } from './types.js';

/** Throws unless the previous parameters have the shard's length. */
export function checkPrevious(previous: Float32Array | undefined, shardLength: number): void {
  if (previous !== undefined && previous.length !== shardLength) {
    throw invalidArgument(`previous parameters have ${previous.length} elements but the shard has ${shardLength}; pass the shard's slice of the previous version`);
  }
}

/** previous + step, or the step alone without previous. */
export function applyStep(step: Float32Array, previous: Float32Array | undefined): Float32Array {
  checkPrevious(previous, step.length);
  if (previous === undefined) return step;
  const out = new Float32Array(step.length);
  for (let i = 0; i < step.length; i++) out[i] = previous[i]! + step[i]!;
  return out;
}

/** Calls fn(start, end) for each segment someone held. */
export function forHeld(segments: readonly ShardSegment[], held: Uint8Array, fn: (start: number, end: number) => void): void {
  for (let s = 0; s < segments.length; s++) {
    if (held[s] === 1) {
      const seg = segments[s]!;
      fn(seg.start, seg.start + seg.length);
    }
  }
}
