import { failedPrecondition, invalidArgument } from '@fedmm/core';
import { decodeSum } from './fixed-point.js';
import type { UnmaskPlan } from './messages.js';
import { applyMasks, type SignedSeed } from './prg.js';
import { addInto } from './ring.js';
import type { UnmaskPool } from './unmask-pool.js';
import { sameList } from './validate.js';

/** Input of `unmaskShard`: a worker's masked sum of coordinates [offset, offset + maskedSum.length). */
export interface UnmaskShardInput {
  readonly plan: UnmaskPlan;
  readonly maskedSum: Uint32Array;
  readonly offset: number;
}

/**
 * Removes the plan's masks from a masked sum of the survivors' inputs over one coordinate range,
 * in place, generating only that range of each mask stream; returns the unmasked encoded sum.
 */
export function unmaskShard({ plan, maskedSum, offset }: UnmaskShardInput): Uint32Array {
  checkShardRange(plan, maskedSum.length, offset);
  applyMasks(maskedSum, unmaskingMasks(plan), offset);
  return maskedSum;
}

/** Refuses a shard range that does not lie within the plan's vector. */
export function checkShardRange(plan: UnmaskPlan, length: number, offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > plan.vectorLength) {
    throw invalidArgument(
      `shard [${offset}, ${offset + length}) lies outside the ${plan.vectorLength} coordinates of round ${plan.roundId}`,
    );
  }
}

/** The masks that remove the plan's corrections: each with the opposite sign. */
export function unmaskingMasks(plan: UnmaskPlan): SignedSeed[] {
  return plan.corrections.map((c) => ({ seed: c.seed, sign: c.sign === 1 ? -1 : 1 }));
}

/** Unmasks a shard and decodes it to the float sum of the survivors' clipped updates. */
export function unmaskAndDecodeShard(input: UnmaskShardInput): Float32Array {
  return decodeSum(unmaskShard(input), input.plan.survivors.length, input.plan.encoding);
}

/**
 * A shard worker's running sum of masked inputs over coordinates [offset, offset + length),
 * memory O(length). It records who contributed so that unmasking refuses a sum that does not hold
 * exactly the survivors' inputs (a late input would otherwise stay masked and corrupt the result).
 */
export class MaskedSumAccumulator {
  readonly offset: number;
  readonly sum: Uint32Array;
  private readonly contributors = new Set<string>();

  constructor(offset: number, length: number) {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 1) {
      throw invalidArgument(`a shard needs offset >= 0 and length >= 1, got offset ${offset}, length ${length}`);
    }
    this.offset = offset;
    this.sum = new Uint32Array(length);
  }

  /** Adds a chunk of one client's masked vector whose first word is coordinate `at`. */
  add(clientId: string, chunk: Uint32Array, at: number = this.offset): void {
    addInto(this.sum, chunk, at - this.offset);
    this.contributors.add(clientId);
  }

  /** The clients that contributed, sorted. */
  get clients(): readonly string[] {
    return [...this.contributors].sort();
  }

  /** Unmasks and decodes the shard; fails if the contributors are not exactly the plan's survivors. */
  finish(plan: UnmaskPlan): Float32Array {
    this.checkContributors(plan);
    return unmaskAndDecodeShard({ plan, maskedSum: this.sum, offset: this.offset });
  }

  /** `finish`, with the unmasking split over the threads of `pool`. */
  async finishInPool(plan: UnmaskPlan, pool: UnmaskPool): Promise<Float32Array> {
    this.checkContributors(plan);
    const sum = await pool.unmaskShard({ plan, maskedSum: this.sum, offset: this.offset });
    return decodeSum(sum, plan.survivors.length, plan.encoding);
  }

  private checkContributors(plan: UnmaskPlan): void {
    if (!sameList(this.clients, [...plan.survivors].sort())) {
      throw failedPrecondition(
        `shard at ${this.offset} summed inputs of [${this.clients.join(', ')}] but round ${plan.roundId} ` +
          `unmasks exactly [${plan.survivors.join(', ')}]; rebuild the shard sum from the survivors' inputs`,
      );
    }
  }
}
