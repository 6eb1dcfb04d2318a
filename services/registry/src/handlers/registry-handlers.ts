import { registry as pb, tensor as tpb } from '@fedmm/proto';
import { FedmmError, type Logger } from '@fedmm/core';
import { unary, clientStream, serverStream, type ServiceBinding } from '@fedmm/service-kit';
import { crc32c } from '@fedmm/tensor';
import { fedmmMetrics } from '@fedmm/telemetry';
import type { Registry } from '../domain/registry.js';
import type { BlobWriter } from '../domain/blobs.js';
import type { StagedShardWriter } from '../domain/round-staging.js';
import { kindFromPb, lineageFromPb, modelToPb, roundAttemptFromPb, ruleToPb, stageFromPb, versionToPb } from './convert.js';

const MAX_CHUNK = 1024 * 1024;

/** gRPC bindings of the registry: proto <-> domain mapping and status codes only. */
export function registryBinding(reg: Registry, log: Logger, limits: { maxArtifactBytes: number }): ServiceBinding {
  const m = fedmmMetrics();
  const impl: pb.RegistryServiceServer = {
    createModel: unary('CreateModel', log, async (req: pb.CreateModelRequest) => ({ model: modelToPb(await reg.createModel(req)) })),
    getModel: unary('GetModel', log, async (req: pb.GetModelRequest) => ({ model: modelToPb(await reg.getModel(req.modelId)) })),
    listModels: unary('ListModels', log, async () => ({ models: (await reg.listModels()).map(modelToPb) })),
    getVersion: unary('GetVersion', log, async (req: pb.GetVersionRequest) => ({ version: versionToPb(await reg.getVersion(req.versionId)) })),
    listVersions: unary('ListVersions', log, async (req: pb.ListVersionsRequest) => ({ versions: (await reg.listVersions(req.modelId, req.tenant || undefined)).map(versionToPb) })),
    promoteVersion: unary('PromoteVersion', log, async (req: pb.PromoteVersionRequest) => {
      const stage = stageFromPb(req.stage);
      if (!stage) throw new FedmmError('INVALID_ARGUMENT', 'stage must be candidate, production or archived');
      return { version: versionToPb(await reg.promote(req.versionId, stage)) };
    }),
    setAccessRule: unary('SetAccessRule', log, async (req: pb.SetAccessRuleRequest) => {
      if (!req.rule) throw new FedmmError('INVALID_ARGUMENT', 'rule is required');
      return { rule: ruleToPb(await reg.setAccessRule({ ...req.rule })) };
    }),
    collectGarbage: unary('CollectGarbage', log, async (req: pb.CollectGarbageRequest) => {
      const r = await reg.collectGarbage(req.dryRun);
      return { removedSha256: r.removed, bytesFreed: r.bytesFreed, removedRoundAttempts: r.removedRoundAttempts };
    }),
    putRoundShard: clientStream('PutRoundShard', log, async (messages: AsyncIterable<pb.PutRoundShardRequest>) => {
      let writer: StagedShardWriter | undefined;
      try {
        for await (const msg of messages) {
          const p = msg.payload;
          if (!p) throw new FedmmError('INVALID_ARGUMENT', 'a PutRoundShard message carries neither a header nor a chunk');
          if (p.$case === 'header') {
            if (writer) throw new FedmmError('INVALID_ARGUMENT', 'the shard header was sent twice; send it once, first');
            const h = p.value;
            writer = await reg.beginRoundShard({
              modelId: h.modelId, ...roundAttemptFromPb(h.round), shard: h.shard,
              elementOffset: h.elementOffset, elementCount: h.elementCount, contributors: h.contributors, sha256: h.sha256,
            }, limits.maxArtifactBytes);
            continue;
          }
          if (!writer) throw new FedmmError('INVALID_ARGUMENT', 'the first PutRoundShard message must be the header');
          const c = p.value;
          if (c.data.byteLength > MAX_CHUNK) throw new FedmmError('INVALID_ARGUMENT', `chunk of ${c.data.byteLength} bytes exceeds ${MAX_CHUNK}; send chunks of at most 1 MiB`);
          if (c.offset !== writer.bytesWritten) throw new FedmmError('INVALID_ARGUMENT', `chunk at offset ${c.offset} but ${writer.bytesWritten} bytes were received; send chunks in order`);
          if (crc32c(c.data) !== c.crc32c) throw new FedmmError('DATA_LOSS', `chunk at offset ${c.offset} fails its CRC-32C check; resend the shard`);
          await writer.append(c.data);
          m.bytesIn.add(c.data.byteLength, { service: 'registry' });
        }
        if (!writer) throw new FedmmError('INVALID_ARGUMENT', 'the shard ended before its header; send a header, then chunks');
        const { alreadyStaged } = await writer.commit();
        writer = undefined;
        return { alreadyStaged };
      } finally {
        await writer?.abort();
      }
    }),
    assembleRoundVersion: unary('AssembleRoundVersion', log, async (req: pb.AssembleRoundVersionRequest) => {
      const lineage = lineageFromPb(req.lineage);
      const r = await reg.assembleRoundVersion({
        modelId: req.modelId,
        parentVersionId: req.parentVersionId,
        ...roundAttemptFromPb(req.round),
        numShards: req.numShards,
        tensors: (req.layout?.tensors ?? []).map((t) => {
          if (t.dtype !== tpb.DType.D_TYPE_F32 && t.dtype !== tpb.DType.D_TYPE_UNSPECIFIED) throw new FedmmError('INVALID_ARGUMENT', `tensor ${t.name}: a round's version is F32`);
          return { name: t.name, shape: t.shape.map(Number), ...(t.modality ? { modality: t.modality } : {}) };
        }),
        ...(lineage ? { lineage } : {}),
        metrics: req.metrics,
      });
      return { version: versionToPb(r.version), alreadyAssembled: r.alreadyAssembled };
    }),
    discardRoundShards: unary('DiscardRoundShards', log, async (req: pb.DiscardRoundShardsRequest) => ({ removed: await reg.discardRoundShards(roundAttemptFromPb(req.round)) })),
    uploadVersion: clientStream('UploadVersion', log, async (messages: AsyncIterable<pb.UploadVersionRequest>) => {
      let header: pb.UploadVersionHeader | undefined;
      let writer: BlobWriter | undefined;
      try {
        for await (const msg of messages) {
          const p = msg.payload;
          if (!p) throw new FedmmError('INVALID_ARGUMENT', 'an upload message carries neither a header nor a chunk');
          if (p.$case === 'header') {
            if (header) throw new FedmmError('INVALID_ARGUMENT', 'the upload header was sent twice; send it once, first');
            header = p.value;
            if (!kindFromPb(header.kind)) throw new FedmmError('INVALID_ARGUMENT', 'header.kind must be MODEL_KIND_BASE or MODEL_KIND_ADAPTER');
            writer = await reg.beginUpload(header.modelId, limits.maxArtifactBytes, header.artifactSize);
            continue;
          }
          if (!header || !writer) throw new FedmmError('INVALID_ARGUMENT', 'the first upload message must be the header');
          const c = p.value;
          if (c.data.byteLength > MAX_CHUNK) throw new FedmmError('INVALID_ARGUMENT', `chunk of ${c.data.byteLength} bytes exceeds ${MAX_CHUNK}; send chunks of at most 1 MiB`);
          if (c.offset !== writer.bytesWritten) throw new FedmmError('INVALID_ARGUMENT', `chunk at offset ${c.offset} but ${writer.bytesWritten} bytes were received; send chunks in order`);
          if (crc32c(c.data) !== c.crc32c) throw new FedmmError('DATA_LOSS', `chunk at offset ${c.offset} fails its CRC-32C check; resend it`);
          if (writer.bytesWritten + c.data.byteLength > header.artifactSize) throw new FedmmError('INVALID_ARGUMENT', `more bytes than the announced artifact size ${header.artifactSize}`);
          await writer.append(c.data);
          m.bytesIn.add(c.data.byteLength, { service: 'registry' });
        }
        if (!header || !writer) throw new FedmmError('INVALID_ARGUMENT', 'the upload ended before its header; send a header, then chunks');
        const lineage = lineageFromPb(header.lineage);
        const v = await reg.finishUpload(writer, {
          modelId: header.modelId,
          kind: kindFromPb(header.kind)!,
          parentVersionId: header.parentVersionId,
          ...(lineage ? { lineage } : {}),
          metrics: header.metrics,
          artifactSha256: header.artifactSha256,
          artifactSize: header.artifactSize,
        });
        writer = undefined;
        return { version: versionToPb(v) };
      } finally {
        await writer?.abort();
      }
    }),
    downloadVersion: serverStream('DownloadVersion', log, async (req: pb.DownloadVersionRequest, write) => {
      const chunkSize = Math.min(req.chunkSize || MAX_CHUNK, MAX_CHUNK);
      const { version, chunks } = await reg.openDownload(req.versionId, req.tenant, req.offset, chunkSize);
      let offset = req.offset;
      let first = true;
      for await (const data of chunks) {
        await write({ version: first ? versionToPb(version) : undefined, chunk: { offset, data, crc32c: crc32c(data) } });
        m.bytesOut.add(data.byteLength, { service: 'registry' });
        first = false;
        offset += data.byteLength;
      }
      if (first) await write({ version: versionToPb(version), chunk: undefined });
    }),
  };
  return { name: 'fedmm.v1.RegistryService', definition: pb.RegistryServiceService, implementation: impl };
}
