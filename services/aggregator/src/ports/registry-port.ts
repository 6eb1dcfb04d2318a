import type { ChannelCredentials } from '@grpc/grpc-js';
import { FedmmError } from '@fedmm/core';
import { registry as rpb, tensor as tpb } from '@fedmm/proto';
import { createRpcClient, type RpcClient } from '@fedmm/service-kit';
import { crc32c, parseSafetensors, serializeSafetensors, sha256Hex, toFloat32, makeTensor, type Tensor } from '@fedmm/tensor';
import type { LayoutTensorInfo } from '../domain/types.js';

export interface VersionInfo {
  versionId: string;
  modelId: string;
  number: number;
  round: number;
  layout: { tensors: LayoutTensorInfo[]; fingerprint: string };
}

export interface NewAdapterVersion {
  modelId: string;
  parentVersionId: string;
  lineage: { taskId: string; round: number; contributingClients: string[]; strategy: string; privacy?: { mode: string; noiseMultiplier: number; clipNorm: number; delta: number; epsilonSpent: number; secureAggregation: boolean } };
  metrics: Record<string, number>;
  tensors: Map<string, { shape: number[]; data: Float32Array; modality?: string }>;
}

/** What the aggregator needs from the registry. */
export interface RegistryPort {
  getVersion(versionId: string): Promise<VersionInfo>;
  readTensors(versionId: string): Promise<Map<string, Float32Array>>;
  publishVersion(v: NewAdapterVersion): Promise<VersionInfo>;
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
  private readonly metadataCache = new Map<string, Record<string, string>>();
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
    this.metadataCache.set(versionId, { ...(parsed.header.metadata ?? {}) });
    const out = new Map<string, Float32Array>();
    for (const [name, t] of parsed.tensors) out.set(name, Float32Array.from(toFloat32(t)));
    if (this.cache.size > 8) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(versionId, out);
    return out;
  }

  async publishVersion(v: NewAdapterVersion): Promise<VersionInfo> {
    const tensors = new Map<string, Tensor>();
    // Settings of the adapters (LoRA rank and alpha, tokenizer ...) carry forward from the parent.
    if (!this.metadataCache.has(v.parentVersionId)) await this.readTensors(v.parentVersionId);
    const inherited = Object.fromEntries(Object.entries(this.metadataCache.get(v.parentVersionId) ?? {}).filter(([k]) => !/^fedmm\.(task|round|modality\.|scale\.)/.test(k)));
    const metadata: Record<string, string> = { ...inherited, 'fedmm.task': v.lineage.taskId, 'fedmm.round': String(v.lineage.round) };
    for (const [name, t] of v.tensors) {
      tensors.set(name, makeTensor('F32', t.shape, t.data));
      if (t.modality) metadata[`fedmm.modality.${name}`] = t.modality;
    }
    const bytes = serializeSafetensors(tensors, metadata);
    const sha = sha256Hex(bytes);
    const res = await new Promise<rpb.UploadVersionResponse>((resolve, reject) => {
      const call = this.client.uploadVersion({ deadlineMs: 120_000 }, (err, r) => (err ? reject(err) : resolve(r!)));
      call.write({ payload: { $case: 'header', value: rpb.UploadVersionHeader.fromPartial({
        modelId: v.modelId,
        kind: rpb.ModelKind.MODEL_KIND_ADAPTER,
        parentVersionId: v.parentVersionId,
        lineage: { ...v.lineage, parentVersionId: v.parentVersionId, privacy: v.lineage.privacy },
        metrics: v.metrics,
        artifactSha256: sha,
        artifactSize: bytes.byteLength,
      }) } });
      const step = 1024 * 1024;
      for (let off = 0; off < bytes.byteLength; off += step) {
        const data = Buffer.from(bytes.buffer, bytes.byteOffset + off, Math.min(step, bytes.byteLength - off));
        call.write({ payload: { $case: 'chunk', value: { offset: off, data, crc32c: crc32c(data) } } });
      }
      call.end();
    });
    return versionInfoOf(res.version!);
  }

  close(): void {
    this.client.close();
  }
}
