import { tensor as tpb, gateway as pb } from '@fedmm/proto';
import type { UploadHeaderInfo, UploadMessage, UploadPolicy } from '../domain/types.js';

const dtypeNames: Readonly<Record<number, string>> = {
  [tpb.DType.D_TYPE_F32]: 'F32',
  [tpb.DType.D_TYPE_F16]: 'F16',
  [tpb.DType.D_TYPE_BF16]: 'BF16',
  [tpb.DType.D_TYPE_I8]: 'I8',
};

/** The wire name of a DType (F32, F16, BF16, I8), or a description of what was sent. */
export function dtypeName(d: tpb.DType): string {
  return dtypeNames[d] ?? (tpb.DType[d] ?? `dtype ${d}`);
}

/** An upload header as the domain reads it. */
export function headerFromPb(h: pb.UploadHeader): UploadHeaderInfo {
  return {
    taskId: h.taskId,
    round: h.round,
    uploadId: h.uploadId,
    tensors: (h.layout?.tensors ?? []).map((t) => ({ name: t.name, dtype: dtypeName(t.dtype), shape: t.shape, ...(t.dtype === tpb.DType.D_TYPE_I8 ? { scale: t.scale } : {}) })),
    sha256: h.sha256,
    size: h.size,
    numExamples: h.numExamples,
    samplingRate: h.samplingRate,
    noiseMultiplier: h.noiseMultiplier,
    steps: h.steps,
  };
}

/** The client stream of UploadUpdate as domain messages. */
export async function* uploadMessages(stream: AsyncIterable<pb.UploadUpdateRequest>): AsyncGenerator<UploadMessage> {
  for await (const m of stream) {
    const p = m.payload;
    if (p?.$case === 'header') yield { header: headerFromPb(p.value) };
    else if (p?.$case === 'chunk') yield { chunk: { offset: p.value.offset, data: p.value.data, crc32c: p.value.crc32c } };
    else yield { chunk: { offset: 0, data: new Uint8Array(0), crc32c: 0 } };
  }
}

/** The aggregator's upload policy as the domain reads it. */
export function policyFromPb(p: { layout: tpb.TensorLayout | undefined; maxUpdateNorm: number; maxUpdateBytes: number; shardElements: number; secureAggregation: boolean; roundAttempt: number }): UploadPolicy {
  return {
    tensors: (p.layout?.tensors ?? []).map((t) => ({ name: t.name, dtype: dtypeName(t.dtype), shape: t.shape, ...(t.modality ? { modality: t.modality } : {}) })),
    fingerprint: p.layout?.fingerprint ?? '',
    maxUpdateNorm: p.maxUpdateNorm,
    maxUpdateBytes: p.maxUpdateBytes,
    shardElements: p.shardElements,
    secureAggregation: p.secureAggregation,
    roundAttempt: p.roundAttempt,
  };
}
