import type { StrategyConfig } from '@fedmm/aggregation';

export type RoundState = 'created' | 'open' | 'collecting' | 'sealing' | 'aggregating' | 'published' | 'failed';
export type TaskState = 'created' | 'running' | 'completed' | 'failed';

export interface PrivacySettings {
  mode: 'none' | 'record' | 'client';
  noiseMultiplier: number;
  targetEpsilon: number;
  delta: number;
  clipNorm: number;
  accountant: 'rdp' | 'pld';
  secureAggregation: boolean;
  secaggThreshold: number;
  secaggNumShares: number;
  /** Secure aggregation in disjoint groups of about this many clients (0 or absent: one group). */
  secaggGroupSize?: number;
}

export interface SelectionSettings {
  fraction: number;
  minClients: number;
  maxClients: number;
}

export interface TaskRecord {
  taskId: string;
  modelId: string;
  baseVersionId: string;
  members: string[];
  rounds: number;
  strategy: StrategyConfig;
  privacy: PrivacySettings;
  selection: SelectionSettings;
  roundDeadlineSeconds: number;
  maxUpdateNorm: number;
  maxUpdateBytes: number;
  termsJson: string;
  termsDigest: string;
  createdAt: number;
  clientConfig: Record<string, number>;
  state: TaskState;
  currentRound: number;
  /** The adapter version the next round starts from. */
  latestVersionId: string;
  valuationMethod: string;
  /** Tenants whose signed acceptance of the current terms is recorded. */
  accepted: string[];
}

export interface ReceivedUpdate {
  tenant: string;
  sha256: string;
  numExamples: number;
  bytes: number;
  tensors: string[];
  numShards: number;
  samplingRate: number;
  noiseMultiplier: number;
  steps: number;
  at: number;
  /** The upload's trace, so the round's publication can link back to every upload. */
  trace?: { traceId: string; spanId: string };
}

/**
 * A worker's record in the store that it finished a shard of a round attempt: the values are staged
 * at the registry, so this holds none. `failed` marks a secure shard that could not be unmasked.
 */
export interface ShardDoneMarker {
  shard: number;
  worker: string;
  contributors?: number;
  failed?: string;
}

export interface LayoutTensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  modality?: string;
}

export interface RoundRecord {
  taskId: string;
  number: number;
  attempt: number;
  state: RoundState;
  selected: string[];
  received: ReceivedUpdate[];
  dropped: string[];
  inputVersionId: string;
  outputVersionId: string;
  openedAt: number;
  deadlineAt: number;
  closedAt: number;
  failureReason: string;
  /** Offsets of fedmm.updates when the round opened: where a replacement worker replays from. */
  updateStartOffsets: Record<string, string>;
  updateEndOffsets: Record<string, string>;
  layout: { tensors: LayoutTensorInfo[]; fingerprint: string; totalElements: number };
  shardElements: number;
  numShards: number;
  reservationId: string;
  /** Shards whose results the coordinator has, while aggregating. */
  shardsDone: number;
  metrics: Record<string, number>;
  /** Present for a round under secure aggregation in one group: where its protocol stands. */
  secagg?: SecAggRoundState;
  /**
   * Present instead of `secagg` for a task with `secaggGroupSize`: the round's clients partitioned
   * into disjoint groups, each its own SecAgg+ instance. Fixed when the round opens, so a restarted
   * coordinator and every worker use the same partition.
   */
  secaggGroups?: SecAggRoundState[];
}

/** The coordinator's persisted view of a secure round's protocol (public values only). */
export interface SecAggRoundState {
  /** The group's id (`g1`, `g2` ...) when the round runs one instance per group; absent: one instance over the round. */
  group?: string;
  /** `task/round/attempt`: binds every key and message to this attempt (the group is bound by the seed and participants). */
  roundId: string;
  /** Public round seed (base64) that fixes the neighbour graph. */
  roundSeed: string;
  participants: string[];
  vectorLength: number;
  clipRange: number;
  numShares: number;
  threshold: number;
  /** `failed`: a group that fell below its threshold; its members count as dropouts (groups only). */
  stage: 'setup' | 'share-keys' | 'collect-masked' | 'unmask' | 'done' | 'failed';
  /** Why the group failed. */
  failure?: string;
  /** When the current sub-stage closes even if not everyone answered. */
  stageDeadlineAt: number;
  /** Clients that answered stage 0 / stage 1 when those stages closed. */
  joined: string[];
  shared: string[];
  /** Clients whose masked input is in the sum, fixed when collection closed. */
  survivors: string[];
}

/**
 * One shard of one group's unmasked sum (stored at `groupSumKey` for valuation): the float32 sum of
 * the group's survivors' clipped updates over coordinates [offset, offset + length).
 */
export interface GroupSumShard {
  group: string;
  shard: number;
  offset: number;
  survivors: readonly string[];
  /** base64 of little-endian float32 values. */
  values: string;
}
