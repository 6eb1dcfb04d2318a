import { FedmmError } from '@fedmm/core';
import { registry as rpb } from '@fedmm/proto';
import { createRpcClient, fromServiceError, type RpcClient } from '@fedmm/service-kit';
import { crc32c, makeTensor, parseSafetensors, serializeSafetensors, sha256Hex, toFloat32, type Tensor } from '@fedmm/tensor';
import type { AdapterSet } from '@fedmm/model';

/** Named float32 tensors with an optional modality tag (stored as `fedmm.modality.<name>` metadata). */
export type NamedArrays = Map<string, { shape: readonly number[]; data: Float32Array; modality?: string }>;

/** A downloaded artifact: its version record, tensors and safetensors metadata. */
export interface DownloadedVersion {
  version: rpb.ModelVersion;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  metadata: Record<string, string>;
  bytes: number;
}

const CHUNK = 1 << 20;

/** An operator's view of the registry over gRPC: models, version upload and download. */
export class RegistryClient {
  readonly rpc: RpcClient<typeof rpb.RegistryServiceService>;
  constructor(readonly address: string) {
    this.rpc = createRpcClient(rpb.RegistryServiceService, address);
  }

  /** Creates a model, or returns it when it exists with the same configuration. */
  async ensureModel(modelId: string, description: string, configJson: string): Promise<rpb.Model> {
    const res = await this.rpc.createModel({ modelId, description, configJson }, { deadlineMs: 15_000 }).catch((e: unknown) => {
      throw fromServiceError(e, `creating model ${modelId} in the registry at ${this.address}`);
    });
    return res.model!;
  }

  async getModel(modelId: string): Promise<rpb.Model> {
    const res = await this.rpc.getModel({ modelId }, { deadlineMs: 15_000 }).catch((e: unknown) => {
      throw fromServiceError(e, `reading model ${modelId} from the registry at ${this.address}`);
    });
    if (!res.model) throw new FedmmError('NOT_FOUND', `the registry at ${this.address} has no model ${modelId}`);
    return res.model;
  }

  async getVersion(versionId: string): Promise<rpb.ModelVersion> {
    const res = await this.rpc.getVersion({ versionId }, { deadlineMs: 15_000 }).catch((e: unknown) => {
      throw fromServiceError(e, `reading version ${versionId} from the registry at ${this.address}`);
    });
    if (!res.version) throw new FedmmError('NOT_FOUND', `the registry at ${this.address} has no version ${versionId}`);
    return res.version;
  }

  /** Uploads tensors as a new version (safetensors, 1 MiB chunks with CRC-32C); returns the version record. */
  async uploadVersion(input: { modelId: string; kind: 'base' | 'adapter'; parentVersionId?: string; tensors: NamedArrays; metadata?: Record<string, string>; metrics?: Record<string, number> }): Promise<rpb.ModelVersion> {
    const named = new Map<string, Tensor>();
    const metadata: Record<string, string> = { ...(input.metadata ?? {}) };
    for (const [n, t] of input.tensors) {
      named.set(n, makeTensor('F32', [...t.shape], t.data));
      if (t.modality) metadata[`fedmm.modality.${n}`] = t.modality;
    }
    const bytes = serializeSafetensors(named, metadata);
    const res = await new Promise<rpb.UploadVersionResponse>((resolve, reject) => {
      const call = this.rpc.uploadVersion({ deadlineMs: 300_000 }, (err, r) => (err ? reject(fromServiceError(err, `uploading a ${input.kind} version of ${input.modelId}`)) : resolve(r!)));
      call.write({
        payload: {
          $case: 'header',
          value: rpb.UploadVersionHeader.fromPartial({
            modelId: input.modelId,
            kind: input.kind === 'base' ? rpb.ModelKind.MODEL_KIND_BASE : rpb.ModelKind.MODEL_KIND_ADAPTER,
            parentVersionId: input.parentVersionId ?? '',
            metrics: input.metrics ?? {},
            artifactSha256: sha256Hex(bytes),
            artifactSize: bytes.byteLength,
          }),
        },
      });
      for (let off = 0; off < bytes.byteLength; off += CHUNK) {
        const data = Buffer.from(bytes.buffer, bytes.byteOffset + off, Math.min(CHUNK, bytes.byteLength - off));
        call.write({ payload: { $case: 'chunk', value: { offset: off, data, crc32c: crc32c(data) } } });
      }
      call.end();
    });
    return res.version!;
  }

  /** Downloads a version's artifact and parses it, checking each chunk's CRC and the total size. */
  async download(versionId: string): Promise<DownloadedVersion> {
    const parts: Buffer[] = [];
    let version: rpb.ModelVersion | undefined;
    await new Promise<void>((resolve, reject) => {
      const stream = this.rpc.downloadVersion({ versionId, offset: 0, tenant: '', chunkSize: CHUNK });
      stream.on('data', (m: rpb.DownloadVersionResponse) => {
        if (m.version) version = m.version;
        if (m.chunk) {
          if (crc32c(m.chunk.data) !== m.chunk.crc32c) {
            stream.cancel();
            reject(new FedmmError('DATA_LOSS', `chunk at offset ${m.chunk.offset} of ${versionId} failed its CRC-32C check; download it again`));
            return;
          }
          parts.push(Buffer.from(m.chunk.data));
        }
      });
      stream.on('error', (e: unknown) => reject(fromServiceError(e, `downloading version ${versionId}`)));
      stream.on('end', () => resolve());
    });
    const bytes = Buffer.concat(parts);
    if (!version || bytes.byteLength !== Number(version.artifactSize)) {
      throw new FedmmError('DATA_LOSS', `downloaded ${bytes.byteLength} of ${version?.artifactSize ?? '?'} bytes of ${versionId}; download it again`);
    }
    const parsed = parseSafetensors(bytes);
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, t] of parsed.tensors) tensors.set(name, { shape: [...t.shape], data: Float32Array.from(toFloat32(t)) });
    return { version, tensors, metadata: { ...(parsed.header.metadata ?? {}) }, bytes: bytes.byteLength };
  }

  /** Downloads an adapter version as an AdapterSet of the given LoRA shape. */
  async downloadAdapters(versionId: string, lora: { rank: number; alpha: number }): Promise<AdapterSet> {
    const v = await this.download(versionId);
    return { rank: lora.rank, alpha: lora.alpha, tensors: new Map([...v.tensors].map(([n, t]) => [n, { shape: t.shape, data: t.data }])) };
  }

  close(): void {
    this.rpc.close();
  }
}
