import { FedmmError } from '@fedmm/core';
import { addGaussianNoise } from '@fedmm/dp';
import type { MaskedSumAccumulator, UnmaskPlan, UnmaskPool } from '@fedmm/secagg';
import type { PrivacySettings } from '../domain/types.js';

/** One SecAgg+ instance's part of a shard: the masked sum of its survivors' chunks and its plan. */
export interface MaskedGroupShard {
  /** The group's id; absent for a round that runs one instance. */
  readonly group?: string;
  /** The masked sum of the group's survivors' chunks over the shard (undefined if none arrived). */
  readonly acc: MaskedSumAccumulator | undefined;
  readonly plan: UnmaskPlan;
}

/** What a shard of a secure round needs to finish. */
export interface MaskedShardInput {
  /** Every instance that unmasked (a group that fell short has no plan and is left out). */
  readonly groups: readonly MaskedGroupShard[];
  /** The shard's values in the round's input version. */
  readonly previous: Float32Array;
  readonly privacy: PrivacySettings;
  /** Threads that share the unmasking (each generates its own range of every mask stream). */
  readonly pool?: UnmaskPool;
}

/** A finished shard: the new values, and each group's unmasked sum over the shard. */
export interface MaskedShardResult {
  readonly values: Float32Array;
  readonly contributors: number;
  readonly groupSums: readonly { readonly group?: string; readonly survivors: readonly string[]; readonly sum: Float32Array }[];
}

/**
 * Finishes one shard of a secure round: removes each instance's masks over the shard's range
 * only, decodes each group's sum of its survivors, adds the group sums, takes the unweighted mean
 * over all survivors (the server learns no per-client weight), adds client-level DP noise to the
 * mean when the task asks for it, and steps from the previous values. The noise is added after
 * unmasking: the aggregator is trusted to see the exact sums.
 */
export async function finishMaskedShard({ groups, previous, privacy, pool }: MaskedShardInput): Promise<MaskedShardResult> {
  if (groups.length === 0) throw new FedmmError('FAILED_PRECONDITION', 'no secure-aggregation group of the round unmasked; nothing can be finished');
  const total = new Float64Array(previous.length);
  const groupSums: { group?: string; survivors: readonly string[]; sum: Float32Array }[] = [];
  let k = 0;
  for (const { group, acc, plan } of groups) {
    if (!acc) {
      throw new FedmmError('FAILED_PRECONDITION', `no masked input of round ${plan.roundId}${group !== undefined ? ` (group ${group})` : ''} reached this shard; the survivors' uploads are missing from fedmm.updates`);
    }
    const sum = pool ? await acc.finishInPool(plan, pool) : acc.finish(plan);
    for (let i = 0; i < sum.length; i++) total[i]! += sum[i]!;
    k += plan.survivors.length;
    groupSums.push({ ...(group !== undefined ? { group } : {}), survivors: plan.survivors, sum });
  }
  let mean = new Float32Array(total.length);
  for (let i = 0; i < total.length; i++) mean[i] = total[i]! / k;
  if (privacy.mode === 'client' && privacy.noiseMultiplier > 0) {
    // Noise of std sigma*C on the sum is sigma*C/K on the mean; each client clipped to C before masking.
    mean = addGaussianNoise(mean, (privacy.noiseMultiplier * privacy.clipNorm) / k);
  }
  const values = new Float32Array(previous.length);
  for (let i = 0; i < values.length; i++) values[i] = previous[i]! + mean[i]!;
  return { values, contributors: k, groupSums };
}
