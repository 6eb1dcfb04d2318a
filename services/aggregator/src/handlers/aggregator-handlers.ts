import { aggregator as pb } from '@fedmm/proto';
import { FedmmError, type Logger } from '@fedmm/core';
import { unary, type ServiceBinding } from '@fedmm/service-kit';
import type { Coordinator } from '../domain/coordinator.js';
import { layoutToPb, newTaskFromPb, roundToPb, taskToPb } from './convert.js';

/** gRPC bindings of the coordinator: proto <-> domain mapping and status codes only. */
export function aggregatorBinding(c: Coordinator, log: Logger): ServiceBinding {
  const impl: pb.AggregatorServiceServer = {
    createTask: unary('CreateTask', log, async (req: pb.CreateTaskRequest) => {
      if (!req.task) throw new FedmmError('INVALID_ARGUMENT', 'task is required');
      return { task: taskToPb(await c.createTask(newTaskFromPb(req.task))) };
    }),
    getTask: unary('GetTask', log, async (req: pb.GetTaskRequest) => ({ task: taskToPb(await c.getTask(req.taskId)) })),
    listTasks: unary('ListTasks', log, async () => ({ tasks: (await c.listTasks()).map(taskToPb) })),
    startRound: unary('StartRound', log, async (req: pb.StartRoundRequest) => ({ round: roundToPb(await c.startRound(req.taskId)) })),
    getRound: unary('GetRound', log, async (req: pb.GetRoundRequest) => ({ round: roundToPb(await c.getRound(req.taskId, req.number)) })),
    listRounds: unary('ListRounds', log, async (req: pb.ListRoundsRequest) => ({ rounds: (await c.listRounds(req.taskId)).map(roundToPb) })),
    cancelRound: unary('CancelRound', log, async (req: pb.CancelRoundRequest) => ({ round: roundToPb(await c.cancelRound(req.taskId, req.number, req.reason)) })),
    getUploadPolicy: unary('GetUploadPolicy', log, async (req: pb.GetUploadPolicyRequest) => {
      const { round, task } = await c.uploadPolicy(req.taskId, req.round, req.tenant);
      return {
        layout: layoutToPb(round),
        maxUpdateNorm: task.maxUpdateNorm,
        maxUpdateBytes: task.maxUpdateBytes,
        shardElements: round.shardElements,
        secureAggregation: task.privacy.secureAggregation,
        roundAttempt: round.attempt,
      };
    }),
    reportUpdateReceived: unary('ReportUpdateReceived', log, async (req: pb.ReportUpdateReceivedRequest) => {
      await c.updateReceived(req.taskId, req.round, {
        tenant: req.tenant,
        sha256: req.updateSha256,
        numExamples: req.numExamples,
        bytes: req.bytes,
        tensors: [...req.tensors],
        numShards: req.numShards,
        samplingRate: req.samplingRate,
        noiseMultiplier: req.noiseMultiplier,
        steps: req.steps,
        at: Date.now(),
      });
      return {};
    }),
    updateTerms: unary('UpdateTerms', log, async (req: pb.UpdateTermsRequest) => ({ task: taskToPb(await c.updateTerms(req.taskId, req.termsJson)) })),
    recordTermsAcceptance: unary('RecordTermsAcceptance', log, async (req: pb.RecordTermsAcceptanceRequest) => {
      await c.recordTermsAcceptance(req.taskId, req.tenant, req.termsDigest, { signatureB64: Buffer.from(req.signature).toString('base64'), certificatePem: req.certificatePem });
      return {};
    }),
  };
  return { name: 'fedmm.v1.AggregatorService', definition: pb.AggregatorServiceService, implementation: impl };
}
