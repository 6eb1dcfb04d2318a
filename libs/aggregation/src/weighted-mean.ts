import { failedPrecondition, invalidArgument } from '@fedmm/core';
import type { Compute } from './compute/compute.js';
import { cpuCompute } from './compute/cpu-compute.js';
import { Participation } from './participation.js';
import { CompiledShard } from './shard-spec.js';
import type { ShardSpec } from './types.js';
import { WrittenRanges } from './written-ranges.js';

/** Tuning of the streaming weighted mean. */
export interface WeightedMeanOptions {
  readonly compute?: Compute;
  /**
   * How many chunks with the same (offset, length) are summed in one pass over the float64
   * accumulator (1..8, default 8). Chunks wait, by reference, until their group is full.
   */
  readonly fuseWidth?: number;
  /** Bytes of chunks allowed to wait for fusing before all groups are flushed (default 64 MiB). */
  readonly pendingBudgetBytes?: number;
}

/** The aggregated mean of one shard and which segments had at least one holder. */
export interface ShardMean {
  readonly mean: Float32Array;
  /** held[s] = 1 when some client sent segment s; other segments have mean 0. */
  readonly held: Uint8Array;
}

interface PendingGroup {
  readonly offset: number;
  readonly rows: Float32Array[];
  readonly weights: number[];
}

const DEFAULT_PENDING_BUDGET = 64 * 1024 * 1024;

// Finished accumulators hand their float64 sums back for the next shard of the same length (shards
// of a round share one length, and the next round repeats them). A fresh 8 MiB array costs ~3.5 ms
// of page faults on first touch, as much as reading 25 MiB of updates; a compute's own sums (the
// SIMD kernels' live in WebAssembly memory) also cost an instantiation. A sum is never cleared:
// the first pass over a range assigns instead of adding (WrittenRanges tracks which ranges hold
// this shard's values), so it neither writes zeros nor reads old values; ranges no chunk covers
// are never read (finishMean reads held segments only, which their holders covered in full).
// Idle sums are capped, so what stays allocated between rounds is bounded.
const IDLE_SUMS_LIMIT_BYTES = 64 * 1024 * 1024;
// Also few: idle sums in WebAssembly memory count against the SIMD kernels' cap on live memories.
const IDLE_SUMS_LIMIT_COUNT = 8;
const idleSums: { readonly compute: Compute; readonly sum: Float64Array }[] = [];
let idleSumBytes = 0;
const EMPTY_SUM = new Float64Array(0);

function takeSum(compute: Compute, length: number): Float64Array {
  for (let i = idleSums.length - 1; i >= 0; i--) {
    const idle = idleSums[i]!;
    if (idle.compute === compute && idle.sum.length === length) {
      idleSums.splice(i, 1);
      idleSumBytes -= idle.sum.byteLength;
      return idle.sum;
    }
  }
  return compute.allocateSum?.(length) ?? new Float64Array(length);
}

function giveSum(compute: Compute, sum: Float64Array): void {
  if (sum.length === 0) return;
  // The oldest idle sums make room: the newest match the shards being aggregated now.
  while (idleSums.length > 0 && (idleSumBytes + sum.byteLength > IDLE_SUMS_LIMIT_BYTES || idleSums.length >= IDLE_SUMS_LIMIT_COUNT)) {
    idleSumBytes -= idleSums.shift()!.sum.byteLength;
  }
  if (sum.byteLength > IDLE_SUMS_LIMIT_BYTES) return;
  idleSums.push({ compute, sum });
  idleSumBytes += sum.byteLength;
}

/**
 * Streaming example-weighted mean of one shard, per segment over the clients that sent it.
 * Memory: one float64 per coordinate plus chunks waiting to be fused (bounded), whatever K.
 */
export class WeightedMeanAccumulator {
  readonly shard: CompiledShard;
  readonly participation: Participation;
  private readonly compute: Compute;
  private sum: Float64Array;
  private readonly written = new WrittenRanges();
  private readonly fuseWidth: number;
  private readonly pendingBudget: number;
  private readonly pending = new Map<string, PendingGroup>();
  private pendingBytes = 0;
  private sealed = false;

  constructor(spec: ShardSpec | CompiledShard, options: WeightedMeanOptions = {}) {
    this.shard = spec instanceof CompiledShard ? spec : new CompiledShard(spec);
    this.participation = new Participation(this.shard);
    this.compute = options.compute ?? cpuCompute;
    this.sum = takeSum(this.compute, this.shard.shardLength);
    const fuseWidth = options.fuseWidth ?? 8;
    if (!Number.isInteger(fuseWidth) || fuseWidth < 1 || fuseWidth > 8) {
      throw invalidArgument(`fuseWidth must be an integer from 1 to 8, got ${fuseWidth}`);
    }
    this.fuseWidth = fuseWidth;
    this.pendingBudget = options.pendingBudgetBytes ?? DEFAULT_PENDING_BUDGET;
  }

  /** Adds `scale * values` for a client holding `weight` examples. */
  addScaled(clientId: string, offset: number, values: Float32Array, weight: number, scale: number): void {
    if (this.sealed) {
      throw failedPrecondition(`chunk from client '${clientId}' arrived after the shard was finished; it belongs to a sealed round and must be dropped`, { clientId });
    }
    if (!Number.isFinite(scale)) throw invalidArgument(`scale for client '${clientId}' is ${scale}; it must be finite`);
    this.participation.record(clientId, offset, values.length, weight);
    if (values.length === 0) return;
    if (this.fuseWidth === 1) {
      const assign = this.prepare(offset, values.length);
      this.compute.weightedSumInto(this.sum, offset, [values], [weight * scale], assign);
      return;
    }
    const key = `${offset}:${values.length}`;
    let group = this.pending.get(key);
    if (group === undefined) {
      group = { offset, rows: [], weights: [] };
      this.pending.set(key, group);
    }
    group.rows.push(values);
    group.weights.push(weight * scale);
    this.pendingBytes += values.byteLength;
    if (group.rows.length >= this.fuseWidth) {
      this.flushGroup(key, group);
    } else if (this.pendingBytes > this.pendingBudget) {
      this.flushAll();
    }
  }

  /** Seals the shard and returns the per-segment weighted mean. */
  finishMean(): ShardMean {
    if (this.sealed) throw failedPrecondition('this shard was already finished; create a new accumulator for the next round');
    this.flushAll();
    this.sealed = true;
    this.participation.assertComplete();
    const mean = new Float32Array(this.shard.shardLength);
    const segs = this.shard.segments;
    const held = new Uint8Array(segs.length);
    const weightSums = this.participation.weightSums;
    for (let s = 0; s < segs.length; s++) {
      const w = weightSums[s]!;
      if (w <= 0) continue;
      held[s] = 1;
      const seg = segs[s]!;
      this.compute.scaleInto(mean, this.sum, seg.start, seg.length, 1 / w);
    }
    giveSum(this.compute, this.sum);
    this.sum = EMPTY_SUM;
    return { mean, held };
  }

  /** Marks [offset, offset + length) written; true when the pass may assign, false when it adds (gaps zeroed). */
  private prepare(offset: number, length: number): boolean {
    const prior = this.written.mark(offset, offset + length);
    if (prior === 'none') return true;
    if (prior !== 'all') {
      const { gaps } = prior;
      for (let i = 0; i < gaps.length; i += 2) this.sum.fill(0, gaps[i], gaps[i + 1]);
    }
    return false;
  }

  private flushGroup(key: string, group: PendingGroup): void {
    const assign = this.prepare(group.offset, group.rows[0]!.length);
    this.compute.weightedSumInto(this.sum, group.offset, group.rows, group.weights, assign);
    for (const r of group.rows) this.pendingBytes -= r.byteLength;
    this.pending.delete(key);
  }

  private flushAll(): void {
    for (const [key, group] of this.pending) this.flushGroup(key, group);
  }
}
