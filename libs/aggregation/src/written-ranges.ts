/** How much of a range had been written before: none, all, or only parts (the unwritten gaps). */
export type PriorWrites = 'none' | 'all' | { readonly gaps: readonly number[] };

/**
 * The ranges of a sum that hold values of this shard; the rest may hold leftovers of an earlier
 * one. Disjoint, sorted, and merged when they touch, so chunks tiling a shard keep the list short.
 */
export class WrittenRanges {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  /** Marks [start, end) written and says how much of it had been; gaps come as [s0, e0, s1, e1, ...]. */
  mark(start: number, end: number): PriorWrites {
    const { starts, ends } = this;
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ends[mid]! < start) lo = mid + 1;
      else hi = mid;
    }
    // Ranges first..j-1 overlap or touch [start, end): they merge with it.
    const first = lo;
    let j = first;
    const gaps: number[] = [];
    let cursor = start;
    let overlapped = false;
    while (j < starts.length && starts[j]! <= end) {
      const s = starts[j]!;
      const e = ends[j]!;
      if (s < end && e > start) {
        overlapped = true;
        if (s > cursor) gaps.push(cursor, s);
        cursor = Math.max(cursor, e);
      }
      j++;
    }
    if (cursor < end) gaps.push(cursor, end);
    const mergedStart = j > first ? Math.min(start, starts[first]!) : start;
    const mergedEnd = j > first ? Math.max(end, ends[j - 1]!) : end;
    starts.splice(first, j - first, mergedStart);
    ends.splice(first, j - first, mergedEnd);
    if (!overlapped) return 'none';
    return gaps.length === 0 ? 'all' : { gaps };
  }

  /** The written ranges as [start, end) pairs. */
  ranges(): [number, number][] {
    return this.starts.map((s, i) => [s, this.ends[i]!]);
  }
}
