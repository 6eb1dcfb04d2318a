import { task as tpb, tensor as tnpb } from '@fedmm/proto';
import type { NewTask } from '../domain/task-validation.js';
import type { RoundRecord, RoundState, TaskRecord } from '../domain/types.js';

export const ts = (ms: number): { seconds: number; nanos: number } | undefined => (ms ? { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 } : undefined);

export function newTaskFromPb(t: tpb.Task): NewTask {
  return {
    taskId: t.taskId,
    modelId: t.modelId,
    baseVersionId: t.baseVersionId,
    members: [...t.members],
    rounds: t.rounds,
    strategy: { name: t.strategy?.name ?? 'fedavg', params: { ...(t.strategy?.params ?? {}) }, clipNorm: t.strategy?.clipNorm ?? 0 },
    privacy: {
      mode: (t.privacy?.mode || 'none') as 'none',
      noiseMultiplier: t.privacy?.noiseMultiplier ?? 0,
      targetEpsilon: t.privacy?.targetEpsilon ?? 0,
      delta: t.privacy?.delta ?? 0,
      clipNorm: t.privacy?.clipNorm ?? 0,
      accountant: (t.privacy?.accountant || 'rdp') as 'rdp',
      secureAggregation: t.privacy?.secureAggregation ?? false,
      secaggThreshold: t.privacy?.secaggThreshold ?? 0,
      secaggNumShares: t.privacy?.secaggNumShares ?? 0,
      secaggGroupSize: t.privacy?.secaggGroupSize ?? 0,
    },
    selection: { fraction: t.selection?.fraction ?? 1, minClients: t.selection?.minClients ?? 0, maxClients: t.selection?.maxClients ?? 0 },
    roundDeadlineSeconds: t.roundDeadlineSeconds,
    maxUpdateNorm: t.maxUpdateNorm,
    maxUpdateBytes: t.maxUpdateBytes,
    termsJson: t.termsJson,
    clientConfig: { ...t.clientConfig },
    valuationMethod: t.valuationMethod,
  };
}

export function taskToPb(t: TaskRecord): tpb.Task {
  const params: Record<string, number> = {};
  let clipNorm = 0;
  for (const [k, v] of Object.entries(t.strategy)) {
    if (k === 'clipNorm' && typeof v === 'number') clipNorm = v;
    else if (typeof v === 'number') params[k] = v;
  }
  return tpb.Task.fromPartial({
    taskId: t.taskId,
    modelId: t.modelId,
    baseVersionId: t.baseVersionId,
    members: t.members,
    rounds: t.rounds,
    strategy: { name: t.strategy.name, params, clipNorm },
    privacy: { ...t.privacy },
    selection: { ...t.selection },
    roundDeadlineSeconds: t.roundDeadlineSeconds,
    maxUpdateNorm: t.maxUpdateNorm,
    maxUpdateBytes: t.maxUpdateBytes,
    termsJson: t.termsJson,
    termsDigest: t.termsDigest,
    createTime: ts(t.createdAt),
    clientConfig: t.clientConfig,
    state: t.state,
    currentRound: t.currentRound,
    valuationMethod: t.valuationMethod,
  });
}

const stateToPb: Record<RoundState, tpb.RoundState> = {
  created: tpb.RoundState.ROUND_STATE_CREATED,
  open: tpb.RoundState.ROUND_STATE_OPEN,
  collecting: tpb.RoundState.ROUND_STATE_COLLECTING,
  sealing: tpb.RoundState.ROUND_STATE_SEALING,
  aggregating: tpb.RoundState.ROUND_STATE_AGGREGATING,
  published: tpb.RoundState.ROUND_STATE_PUBLISHED,
  failed: tpb.RoundState.ROUND_STATE_FAILED,
};

export function roundToPb(r: RoundRecord): tpb.Round {
  return tpb.Round.fromPartial({
    taskId: r.taskId,
    number: r.number,
    state: stateToPb[r.state],
    selected: r.selected,
    received: r.received.map((u) => u.tenant),
    dropped: r.dropped,
    inputVersionId: r.inputVersionId,
    outputVersionId: r.outputVersionId,
    openTime: ts(r.openedAt),
    deadline: ts(r.deadlineAt),
    closeTime: ts(r.closedAt),
    failureReason: r.failureReason,
    attempt: r.attempt,
  });
}

const dtypeToPb: Record<string, tnpb.DType> = { F32: tnpb.DType.D_TYPE_F32, F16: tnpb.DType.D_TYPE_F16, BF16: tnpb.DType.D_TYPE_BF16, I8: tnpb.DType.D_TYPE_I8 };

export function layoutToPb(r: RoundRecord): tnpb.TensorLayout {
  return {
    fingerprint: r.layout.fingerprint,
    tensors: r.layout.tensors.map((t) => ({ name: t.name, dtype: dtypeToPb[t.dtype] ?? tnpb.DType.D_TYPE_F32, shape: t.shape, scale: 0, modality: t.modality ?? '' })),
  };
}
