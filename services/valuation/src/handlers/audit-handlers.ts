import { invalidArgument, type Logger } from '@fedmm/core';
import { audit as pb } from '@fedmm/proto';
import { canonicalJson, type AuditRecord, type PlatformAuditLog } from '@fedmm/audit';
import { unary, type ServiceBinding } from '@fedmm/service-kit';

/** An audit record as it travels over gRPC; `at` keeps the exact hashed time. */
export function recordToPb(r: AuditRecord): pb.AuditRecord {
  return {
    seq: r.seq,
    taskId: r.task,
    kind: r.kind,
    timeUnixMs: Date.parse(r.at),
    actor: r.actor,
    payloadJson: canonicalJson(r.payload),
    prevHash: r.prevHash,
    hash: r.hash,
    at: r.at,
  };
}

/** gRPC bindings of AuditService over the platform trail's store mirror. */
export function auditBinding(log: PlatformAuditLog, logger: Logger): ServiceBinding {
  const impl: pb.AuditServiceServer = {
    listRecords: unary('ListRecords', logger, async (req: pb.ListRecordsRequest): Promise<pb.ListRecordsResponse> => {
      if (!req.taskId) throw invalidArgument('ListRecords needs task_id');
      const all = await log.list(req.taskId);
      const after = all.filter((r) => r.seq > req.afterSeq);
      return { records: (req.limit > 0 ? after.slice(0, req.limit) : after).map(recordToPb) };
    }),
    verifyChain: unary('VerifyChain', logger, async (req: pb.VerifyChainRequest): Promise<pb.VerifyChainResponse> => {
      if (!req.taskId) throw invalidArgument('VerifyChain needs task_id');
      const v = await log.verify(req.taskId);
      return v.ok
        ? { ok: true, length: v.length, headHash: v.headHash, firstBadSeq: 0, problem: '', message: `${v.length} records, chain intact` }
        : { ok: false, length: 0, headHash: '', firstBadSeq: v.firstBadSeq, problem: v.problem, message: v.message };
    }),
  };
  return { name: 'fedmm.v1.AuditService', definition: pb.AuditServiceService, implementation: impl };
}
