import { FedmmError } from '@fedmm/core';
import { addGaussianNoise } from '@fedmm/dp';
import type { MaskedSumAccumulator, UnmaskPlan } from '@fedmm/secagg';
import type { PrivacySettings } from '../domain/types.js';

/** What a shard of a secure round needs to finish. */
export interface MaskedShardInput {
  /** The masked sum of the survivors' chunks over the shard (undefined if none arrived). */
  readonly acc: MaskedSumAccumulator | undefined;
  readonly plan: UnmaskPlan;
  /** The shard's values in the round's input version. */
  readonly previous: Float32Array;
  readonly privacy: PrivacySettings;
}

/**
 * Finishes one shard of a secure round: removes the plan's masks over the shard's range only,
 * decodes the survivors' sum, takes the unweighted mean (the server learns no per-client weight),
 * adds client-level DP noise to the mean when the task asks for it, and steps from the previous
 * values. The noise is added after unmasking: the aggregator is trusted to see the exact sum.
 */
export function finishMaskedShard({ acc, plan, previous, privacy }: MaskedShardInput): { values: Float32Array; contributors: number } {
  if (!acc) {
    throw new FedmmError('FAILED_PRECONDITION', `no masked input of round ${plan.roundId} reached this shard; the survivors' uploads are missing from fedmm.updates`);
  }
  const sum = acc.finish(plan);
  const k = plan.survivors.length;
  let mean = new Float32Array(sum.length);
  for (let i = 0; i < sum.length; i++) mean[i] = sum[i]! / k;
  if (privacy.mode === 'client' && privacy.noiseMultiplier > 0) {
    // Noise of std sigma*C on the sum is sigma*C/K on the mean; each client clipped to C before masking.
    mean = addGaussianNoise(mean, (privacy.noiseMultiplier * privacy.clipNorm) / k);
  }
  const values = new Float32Array(previous.length);
  for (let i = 0; i < values.length; i++) values[i] = previous[i]! + mean[i]!;
  return { values, contributors: k };
}
