import { registry as rpb } from '@fedmm/proto';
import { createRpcClient } from '@fedmm/service-kit';
import { GrpcRegistryPort } from '@fedmm/aggregator-service';
import { crc32c, makeTensor, serializeSafetensors, sha256Hex, type Tensor } from '@fedmm/tensor';

export type NamedArrays = Map<string, { shape: number[]; data: Float32Array; modality?: string }>;

/** Creates a model and uploads a version of it to a registry over gRPC; returns the version id. */
export async function uploadVersion(registryAddr: string, modelId: string, tensors: NamedArrays, kind: 'base' | 'adapter' = 'adapter', parent = ''): Promise<string> {
  const client = createRpcClient(rpb.RegistryServiceService, registryAddr);
  try {
    await client.createModel({ modelId, description: 'test model', configJson: '{}' });
    const named = new Map<string, Tensor>();
    const metadata: Record<string, string> = {};
    for (const [n, t] of tensors) {
      named.set(n, makeTensor('F32', t.shape, t.data));
      if (t.modality) metadata[`fedmm.modality.${n}`] = t.modality;
    }
    const bytes = serializeSafetensors(named, metadata);
    const res = await new Promise<rpb.UploadVersionResponse>((resolve, reject) => {
      const call = client.uploadVersion({}, (err, r) => (err ? reject(err) : resolve(r!)));
      call.write({ payload: { $case: 'header', value: rpb.UploadVersionHeader.fromPartial({ modelId, kind: kind === 'base' ? rpb.ModelKind.MODEL_KIND_BASE : rpb.ModelKind.MODEL_KIND_ADAPTER, parentVersionId: parent, artifactSha256: sha256Hex(bytes), artifactSize: bytes.byteLength }) } });
      for (let off = 0; off < bytes.byteLength; off += 1 << 20) {
        const data = Buffer.from(bytes.subarray(off, Math.min(off + (1 << 20), bytes.byteLength)));
        call.write({ payload: { $case: 'chunk', value: { offset: off, data, crc32c: crc32c(data) } } });
      }
      call.end();
    });
    return res.version!.versionId;
  } finally {
    client.close();
  }
}

/** Downloads a version's tensors as float32 arrays. */
export async function downloadTensors(registryAddr: string, versionId: string): Promise<Map<string, Float32Array>> {
  const port = new GrpcRegistryPort(registryAddr);
  try {
    return await port.readTensors(versionId);
  } finally {
    port.close();
  }
}
