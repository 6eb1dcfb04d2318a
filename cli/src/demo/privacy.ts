import { FedmmError } from '@fedmm/core';

/** Which differential privacy the demo's task runs with. */
export type DemoPrivacyMode = 'none' | 'record' | 'client';

/** The demo task's DP settings. */
export interface DemoPrivacy {
  readonly mode: DemoPrivacyMode;
  /** Record: DP-SGD noise per batch, in units of `clipNorm`; client: noise on the sum of updates. */
  readonly noiseMultiplier: number;
  /** Record: bound on each example's gradient; client: bound on each company's update. */
  readonly clipNorm: number;
  /** Record: the planned share of a company's samples in one DP-SGD batch (adjusted by `planRecordSampling`). */
  readonly samplingRate: number;
  readonly delta: number;
}

/**
 * Settings per mode, measured on the default benchmark (docs/DEMO.md). Record-level: DP-SGD with
 * batches of about a twelfth of each company's data, so every company keeps its two local epochs a
 * round; epsilon about 9 per company over 10 rounds. Client-level: each update clipped above its
 * usual norm (2.3-2.7) and a small noise on the aggregate; four companies cannot buy a useful
 * epsilon that way (about 2,300 here), since the noise is added once to a mean of four updates.
 */
export const PRIVACY_PRESETS: Readonly<Record<DemoPrivacyMode, DemoPrivacy>> = Object.freeze({
  none: { mode: 'none', noiseMultiplier: 0, clipNorm: 0, samplingRate: 0, delta: 1e-5 },
  record: { mode: 'record', noiseMultiplier: 1.0, clipNorm: 0.25, samplingRate: 0.08, delta: 1e-5 },
  client: { mode: 'client', noiseMultiplier: 0.05, clipNorm: 3.0, samplingRate: 0, delta: 1e-5 },
});

/** The batch an agent takes under record-level DP for a planned sampling rate (as `compileTrainingConfig` does). */
export function recordBatchSize(samplingRate: number, samples: number): number {
  return Math.max(1, Math.min(samples, Math.round(samplingRate * samples)));
}

/**
 * Picks the task's record-level `sampling_rate` and `local_steps` for companies of the given train
 * sizes. The coordinator reserves one sampling rate for all of them and the privacy service refuses
 * a commit whose actual rate (each agent's batch / its size) is above it, so the rate is chosen
 * among the fractions k/n nearest to `target` as one that no company's rounded batch exceeds. The
 * steps are the local epochs times the longest epoch, so every company trains `localEpochs` epochs.
 */
export function planRecordSampling(target: number, sizes: readonly number[], localEpochs: number): { samplingRate: number; localSteps: number } {
  if (!(target > 0 && target <= 1)) throw new FedmmError('INVALID_ARGUMENT', `the DP-SGD sampling rate must be in (0, 1], got ${target}`);
  if (sizes.length === 0 || sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new FedmmError('INVALID_ARGUMENT', 'record-level DP needs every company to hold at least one training sample');
  const fits = (q: number): boolean => sizes.every((n) => recordBatchSize(q, n) / n <= q);
  const candidates = new Set<number>();
  for (const n of sizes) {
    const k = Math.round(target * n);
    for (let d = -3; d <= 3; d++) if (k + d >= 1 && k + d <= n) candidates.add((k + d) / n);
  }
  const ordered = [...candidates].filter(fits).sort((a, b) => Math.abs(a - target) - Math.abs(b - target) || a - b);
  const q = ordered[0];
  if (q === undefined) throw new FedmmError('FAILED_PRECONDITION', `no sampling rate near ${target} gives every company (sizes ${sizes.join(', ')}) a batch within it; choose another rate`);
  const longestEpoch = Math.max(...sizes.map((n) => Math.ceil(n / recordBatchSize(q, n))));
  return { samplingRate: q, localSteps: localEpochs * longestEpoch };
}
