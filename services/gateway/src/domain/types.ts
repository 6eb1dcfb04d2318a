import type { task as taskPb } from '@fedmm/proto';

/** A tensor as an upload header declares it; dtype is the wire name (F32, F16, BF16, I8) or what the client sent. */
export interface DeclaredTensor {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly scale?: number;
}

/** The first message of an upload. */
export interface UploadHeaderInfo {
  readonly taskId: string;
  readonly round: number;
  readonly uploadId: string;
  readonly tensors: readonly DeclaredTensor[];
  readonly sha256: string;
  readonly size: number;
  readonly numExamples: number;
  readonly samplingRate: number;
  readonly noiseMultiplier: number;
  readonly steps: number;
}

/** A piece of the update payload. */
export interface UploadChunkInfo {
  readonly offset: number;
  readonly data: Uint8Array;
  readonly crc32c: number;
}

export type UploadMessage = { readonly header: UploadHeaderInfo } | { readonly chunk: UploadChunkInfo };

/** What the aggregator allows for one tenant's upload to one round. */
export interface UploadPolicy {
  /** Every tensor of the round (dtype as the wire name). */
  readonly tensors: readonly { name: string; dtype: string; shape: readonly number[]; modality?: string }[];
  /** The round layout's fingerprint as the aggregator states it (empty: computed here). */
  readonly fingerprint: string;
  readonly maxUpdateNorm: number;
  readonly maxUpdateBytes: number;
  readonly shardElements: number;
  readonly secureAggregation: boolean;
  readonly roundAttempt: number;
}

/** What the gateway tells the aggregator once an update is wholly in Kafka. */
export interface UpdateReport {
  readonly taskId: string;
  readonly round: number;
  readonly tenant: string;
  readonly updateSha256: string;
  readonly numExamples: number;
  readonly numShards: number;
  readonly tensors: readonly string[];
  readonly bytes: number;
  readonly samplingRate: number;
  readonly noiseMultiplier: number;
  readonly steps: number;
}

/** A task and its current round, as the aggregator reports them (passed through to members). */
export interface TaskSnapshot {
  readonly task: taskPb.Task;
  readonly currentRound: taskPb.Round | undefined;
}

/** The gateway's view of the aggregator (the coordinator). */
export interface AggregatorPort {
  getUploadPolicy(taskId: string, round: number, tenant: string): Promise<UploadPolicy>;
  reportUpdateReceived(report: UpdateReport): Promise<void>;
  getTask(taskId: string): Promise<TaskSnapshot>;
  recordTermsAcceptance(input: { taskId: string; tenant: string; termsDigest: string; signature: Uint8Array; certificatePem: string }): Promise<void>;
}

/** The result of an UploadUpdate call. */
export interface UploadResult {
  readonly uploadId: string;
  /** Bytes whose derived chunks Kafka has acknowledged: where a resumed upload continues. */
  readonly bytesReceived: number;
  readonly complete: boolean;
  readonly shards: number;
}

/** What GetUploadStatus answers. */
export interface UploadStatus {
  readonly bytesReceived: number;
  readonly complete: boolean;
  readonly size: number;
}
