import { FedmmError } from '@fedmm/core';
import { registry as pb, lineage as lpb, tensor as tpb } from '@fedmm/proto';
import type { AccessRuleRecord, LayoutInfo, LineageInfo, ModelKind, ModelRecord, Stage, VersionRecord } from '../domain/types.js';

export const toTimestamp = (ms: number): { seconds: number; nanos: number } => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });

const kindToPb: Record<ModelKind, pb.ModelKind> = { base: pb.ModelKind.MODEL_KIND_BASE, adapter: pb.ModelKind.MODEL_KIND_ADAPTER };
const stageToPb: Record<Stage, pb.Stage> = { candidate: pb.Stage.STAGE_CANDIDATE, production: pb.Stage.STAGE_PRODUCTION, archived: pb.Stage.STAGE_ARCHIVED };

export function kindFromPb(k: pb.ModelKind): ModelKind | undefined {
  return k === pb.ModelKind.MODEL_KIND_BASE ? 'base' : k === pb.ModelKind.MODEL_KIND_ADAPTER ? 'adapter' : undefined;
}

export function stageFromPb(s: pb.Stage): Stage | undefined {
  return s === pb.Stage.STAGE_CANDIDATE ? 'candidate' : s === pb.Stage.STAGE_PRODUCTION ? 'production' : s === pb.Stage.STAGE_ARCHIVED ? 'archived' : undefined;
}

const dtypeToPb: Record<string, tpb.DType> = { F32: tpb.DType.D_TYPE_F32, F16: tpb.DType.D_TYPE_F16, BF16: tpb.DType.D_TYPE_BF16, I8: tpb.DType.D_TYPE_I8 };

export function layoutToPb(l: LayoutInfo): tpb.TensorLayout {
  return {
    fingerprint: l.fingerprint,
    tensors: l.tensors.map((t) => ({ name: t.name, dtype: dtypeToPb[t.dtype] ?? tpb.DType.D_TYPE_UNSPECIFIED, shape: t.shape, scale: t.scale ?? 0, modality: t.modality ?? '' })),
  };
}

export function lineageToPb(l: LineageInfo | undefined): lpb.Lineage | undefined {
  if (!l) return undefined;
  return lpb.Lineage.fromPartial({ ...l, privacy: l.privacy ? lpb.PrivacyParameters.fromPartial(l.privacy) : undefined });
}

export function lineageFromPb(l: lpb.Lineage | undefined): LineageInfo | undefined {
  if (!l || (!l.taskId && !l.round && l.contributingClients.length === 0)) return undefined;
  return {
    taskId: l.taskId,
    round: l.round,
    contributingClients: [...l.contributingClients],
    strategy: l.strategy,
    parentVersionId: l.parentVersionId,
    ...(l.privacy ? { privacy: { ...l.privacy } } : {}),
  };
}

export function roundAttemptFromPb(r: pb.RoundAttempt | undefined): { taskId: string; round: number; attempt: number } {
  if (!r) throw new FedmmError('INVALID_ARGUMENT', 'round (task_id, round, attempt) is required');
  return { taskId: r.taskId, round: r.round, attempt: r.attempt };
}

export function versionToPb(v: VersionRecord): pb.ModelVersion {
  return {
    versionId: v.versionId,
    modelId: v.modelId,
    kind: kindToPb[v.kind],
    parentVersionId: v.parentVersionId,
    lineage: lineageToPb(v.lineage),
    metrics: v.metrics,
    artifactSha256: v.artifactSha256,
    artifactSize: v.artifactSize,
    stage: stageToPb[v.stage],
    createTime: toTimestamp(v.createdAt),
    layout: layoutToPb(v.layout),
    number: v.number,
  };
}

export function modelToPb(m: ModelRecord): pb.Model {
  return { modelId: m.modelId, description: m.description, configJson: m.configJson, createTime: toTimestamp(m.createdAt) };
}

export function ruleToPb(r: AccessRuleRecord): pb.AccessRule {
  return { ...r };
}
