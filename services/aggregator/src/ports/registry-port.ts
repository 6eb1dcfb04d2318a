import type { ChannelCredentials } from '@grpc/grpc-js';
import { FedmmError } from '@fedmm/core';
import { lineage as lpb, registry as rpb, tensor as tpb } from '@fedmm/proto';
import { createRpcClient, type RpcClient } from '@fedmm/service-kit';
import { crc32c, parseSafetensors, sha256Hex, toFloat32 } from '@fedmm/tensor';
import type { LayoutTensorInfo } from '../domain/types.js';

export interface VersionInfo {
  versionId: string;
  modelId: string;
  number: number;
  round: number;
  layout: { tensors: LayoutTensorInfo[]; fingerprint: string };
}

/** One finished shard of a round, for the registry to stage until the round's version is assembled. */
export interface RoundShard {
  modelId: string;
  taskId: string;
  round: number;
  attempt: number;
  shard: number;
  /** First flattened element the shard covers. */
  elementOffset: number;
  contributors: number;
  values: Float32Array;
}

/** A round's version, assembled by the registry from the staged shards 0..numShards-1. */
export interface RoundVersion {
  modelId: string;
  parentVersionId: string;
  taskId: string;
  round: number;
  attempt: number;
  numShards: number;
  /** The round's tensors (stored as F32), in any order: the registry sorts them by name like the round layout. */
  tensors: LayoutTensorInfo[];
  lineage: { taskId: string; round: number; contributingClients: string[]; strategy: string; privacy?: { mode: string; noiseMultiplier: number; clipNorm: number; delta: number; epsilonSpent: number; secureAggregation: boolean } };
  metrics: Record<string, number>;
}

/** What the aggregator needs from the registry. */
export interface RegistryPort {
  getVersion(versionId: string): Promise<VersionInfo>;
  readTensors(versionId: string): Promise<Map<string, Float32Array>>;
  /** Stages a finished shard (a worker); a replay with the same bytes is accepted, other bytes are ALREADY_EXISTS. */
  putRoundShard(s: RoundShard): Promise<{ alreadyStaged: boolean }>;
  /** Assembles the round's version from its staged shards (the coordinator); idempotent by task, round and attempt. */
  assembleRoundVersion(v: RoundVersion): Promise<VersionInfo>;
  /** Drops the staged shards of a round attempt that failed. */
  discardRoundShards(taskId: string, round: number, attempt: number): Promise<void>;
  close(): void;
}

const dtypeName: Record<number, string> = { [tpb.DType.D_TYPE_F32]: 'F32', [tpb.DType.D_TYPE_F16]: 'F16', [tpb.DType.D_TYPE_BF16]: 'BF16', [tpb.DType.D_TYPE_I8]: 'I8' };

export function versionInfoOf(v: rpb.ModelVersion): VersionInfo {
  return {
    versionId: v.versionId,
    modelId: v.modelId,
    number: v.number,
    round: v.lineage?.round ?? 0,
    layout: {
      fingerprint: v.layout?.fingerprint ?? '',
      tensors: (v.layout?.tensors ?? []).map((t) => ({ name: t.name, dtype: dtypeName[t.dtype] ?? 'F32', shape: t.shape.map(Number), ...(t.modality ? { modality: t.modality } : {}) })),
    },
  };
}

/** The registry over gRPC. */
export class GrpcRegistryPort implements RegistryPort {
  private readonly client: RpcClient<typeof rpb.RegistryServiceService>;
  private readonly cache = new Map<string, Map<string, Float32Array>>();
  constructor(address: string, creds?: ChannelCredentials) {
    this.client = createRpcClient(rpb.RegistryServiceService, address, creds);
  }

  async getVersion(versionId: string): Promise<VersionInfo> {
    const res = await this.client.getVersion({ versionId }, { deadlineMs: 10_000 });
    if (!res.version) throw new FedmmError('NOT_FOUND', `registry has no version ${versionId}`);
    return versionInfoOf(res.version);
  }

  async readTensors(versionId: string): Promise<Map<string, Float32Array>> {
    const hit = this.cache.get(versionId);
    if (hit) return hit;
    const parts: Buffer[] = [];
    let expected = -1;
    await new Promise<void>((resolve, reject) => {
      const stream = this.client.downloadVersion({ versionId, offset: 0, tenant: '', chunkSize: 1024 * 1024 });
      stream.on('data', (m: rpb.DownloadVersionResponse) => {
        if (m.version) expected = m.version.artifactSize;
        if (m.chunk) {
          if (crc32c(m.chunk.data) !== m.chunk.crc32c) {
            stream.cancel();
            reject(new FedmmError('DATA_LOSS', `chunk at ${m.chunk.offset} of ${versionId} failed its CRC-32C check`));
            return;
          }
          parts.push(Buffer.from(m.chunk.data));
        }
      });
      stream.on('error', reject);
      stream.on('end', () => resolve());
    });
    const bytes = Buffer.concat(parts);
    if (bytes.byteLength !== expected) throw new FedmmError('DATA_LOSS', `downloaded ${bytes.byteLength} of ${expected} bytes of ${versionId}`);
    const parsed = parseSafetensors(bytes);
    const out = new Map<string, Float32Array>();
    for (const [name, t] of parsed.tensors) out.set(name, Float32Array.from(toFloat32(t)));
    if (this.cache.size > 8) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(versionId, out);
    return out;
  }

  async putRoundShard(s: RoundShard): Promise<{ alreadyStaged: boolean }> {
    const bytes = Buffer.from(s.values.buffer, s.values.byteOffset, s.values.byteLength);
    const res = await new Promise<rpb.PutRoundShardResponse>((resolve, reject) => {
      const call = this.client.putRoundShard({ deadlineMs: 60_000 }, (err, r) => (err ? reject(err) : resolve(r!)));
      call.write({ payload: { $case: 'header', value: {
        modelId: s.modelId,
        round: { taskId: s.taskId, round: s.round, attempt: s.attempt },
        shard: s.shard,
        elementOffset: s.elementOffset,
        elementCount: s.values.length,
        contributors: s.contributors,
        sha256: sha256Hex(bytes),
      } } });
      const step = 1024 * 1024;
      for (let off = 0; off < bytes.byteLength; off += step) {
        const data = bytes.subarray(off, Math.min(off + step, bytes.byteLength));
        call.write({ payload: { $case: 'chunk', value: { offset: off, data, crc32c: crc32c(data) } } });
      }
      call.end();
    });
    return { alreadyStaged: res.alreadyStaged };
  }

  async assembleRoundVersion(v: RoundVersion): Promise<VersionInfo> {
    const res = await this.client.assembleRoundVersion({
      modelId: v.modelId,
      parentVersionId: v.parentVersionId,
      round: { taskId: v.taskId, round: v.round, attempt: v.attempt },
      numShards: v.numShards,
      layout: { fingerprint: '', tensors: v.tensors.map((t) => ({ name: t.name, dtype: tpb.DType.D_TYPE_F32, shape: t.shape, scale: 0, modality: t.modality ?? '' })) },
      lineage: lpb.Lineage.fromPartial({ ...v.lineage, parentVersionId: v.parentVersionId }),
      metrics: v.metrics,
    }, { deadlineMs: 300_000 });
    return versionInfoOf(res.version!);
  }

  async discardRoundShards(taskId: string, round: number, attempt: number): Promise<void> {
    await this.client.discardRoundShards({ round: { taskId, round, attempt } }, { deadlineMs: 30_000 });
  }

  close(): void {
    this.client.close();
  }
}
