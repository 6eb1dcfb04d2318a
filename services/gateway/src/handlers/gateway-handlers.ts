import { X509Certificate } from 'node:crypto';
import { FedmmError, isFedmmError, type Logger } from '@fedmm/core';
import { gateway as pb, registry as rpb, task as taskPb } from '@fedmm/proto';
import { tenantFromCall, type CallWithAuthContext } from '@fedmm/pki';
import { clientStream, fromServiceError, serverStream, unary, type CallContext, type RpcClient, type ServiceBinding } from '@fedmm/service-kit';
import { fedmmMetrics } from '@fedmm/telemetry';
import { currentRoundOpened, selectedRound, taskForMember } from '../domain/members.js';
import type { RoundEventHub } from '../domain/round-events.js';
import type { SecAggRelay } from '../domain/secagg-relay.js';
import type { TenantLimits } from '../domain/tenant-limits.js';
import { verifyTermsSignature } from '../domain/terms.js';
import type { AggregatorPort } from '../domain/types.js';
import type { Uploads } from '../domain/uploads.js';
import { peerError } from '../peers.js';
import { uploadMessages } from './convert.js';

export interface GatewayHandlerDeps {
  readonly uploads: Uploads;
  readonly limits: TenantLimits;
  readonly hub: RoundEventHub;
  readonly relay: SecAggRelay;
  readonly aggregator: AggregatorPort;
  readonly registry: RpcClient<typeof rpb.RegistryServiceService>;
  readonly secaggMaxWaitSeconds: number;
  readonly log: Logger;
}

const tenantOf = (ctx: CallContext): string => tenantFromCall(ctx.call as CallWithAuthContext);

function certificatePemOf(ctx: CallContext): string {
  const auth = (ctx.call as CallWithAuthContext).getAuthContext?.();
  const raw = auth?.sslPeerCertificate?.raw;
  if (!raw) throw new FedmmError('UNAUTHENTICATED', 'the connection carries no client certificate; connect with the certificate issued for your tenant');
  return new X509Certificate(raw).toString();
}

/** gRPC bindings of the gateway: the caller's tenant from its certificate, proto <-> domain, status codes. */
export function gatewayBinding(d: GatewayHandlerDeps): ServiceBinding {
  const { log } = d;
  const m = fedmmMetrics();
  const impl: pb.GatewayServiceServer = {
    getTask: unary('GetTask', log, async (req: pb.GatewayServiceGetTaskRequest, ctx) => {
      const snap = await taskForMember(d.aggregator, tenantOf(ctx), req.taskId);
      return { task: snap.task, currentRound: snap.currentRound };
    }),

    subscribeRoundEvents: serverStream('SubscribeRoundEvents', log, async (req: pb.SubscribeRoundEventsRequest, write, ctx) => {
      const tenant = tenantOf(ctx);
      const taskIds = [...new Set(req.taskIds)];
      if (taskIds.length === 0) throw new FedmmError('INVALID_ARGUMENT', 'task_ids is empty; name the tasks whose round events you want');
      // Subscribe before reading the current state, so no event falls between the two.
      const sub = d.hub.subscribe(tenant, taskIds);
      const onAbort = (): void => sub.close();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      try {
        const snaps = await Promise.all(taskIds.map((id) => taskForMember(d.aggregator, tenant, id)));
        for (const snap of snaps) {
          const opened = currentRoundOpened(snap, tenant);
          if (opened) await write({ event: opened });
        }
        for await (const event of sub) await write({ event });
      } finally {
        ctx.signal.removeEventListener('abort', onAbort);
        sub.close();
      }
    }),

    downloadModel: serverStream('DownloadModel', log, async (req: pb.DownloadModelRequest, write, ctx) => {
      const tenant = tenantOf(ctx);
      if (!req.versionId) throw new FedmmError('INVALID_ARGUMENT', 'version_id is required');
      // A member selected for a task's open round may fetch that round's input whatever its access
      // tier: it cannot train without it. Every other download goes through the tier's rules.
      const participating = req.taskId ? await roundInputGrant(d.aggregator, req.taskId, tenant, req.versionId) : false;
      const release = d.limits.acquireStream(tenant, 'download');
      const call = d.registry.downloadVersion({ versionId: req.versionId, offset: req.offset, tenant: participating ? '' : tenant, chunkSize: 0 });
      const onAbort = (): void => call.cancel();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      try {
        // Reading one message at a time and awaiting the client's window keeps at most a chunk or two in memory.
        for await (const msg of call as AsyncIterable<rpb.DownloadVersionResponse>) {
          const bytes = msg.chunk?.data.byteLength ?? 0;
          await d.limits.throttle(tenant, bytes, ctx.signal);
          await write({ version: msg.version, chunk: msg.chunk });
          m.bytesOut.add(bytes, { service: 'gateway' });
        }
      } catch (e) {
        if (e instanceof FedmmError || ctx.signal.aborted) throw e;
        throw peerError(fromServiceError(e, 'registry'), log, 'registry');
      } finally {
        ctx.signal.removeEventListener('abort', onAbort);
        release();
      }
    }),

    uploadUpdate: clientStream('UploadUpdate', log, async (messages: AsyncIterable<pb.UploadUpdateRequest>, ctx) => {
      const tenant = tenantOf(ctx);
      const release = d.limits.acquireStream(tenant, 'upload');
      try {
        return await d.uploads.upload(tenant, uploadMessages(messages), ctx.signal, async (bytes) => {
          await d.limits.throttle(tenant, bytes, ctx.signal);
          m.bytesIn.add(bytes, { service: 'gateway' });
        });
      } catch (e) {
        // A client that hung up was not refused; everything else is a rejection, by status code.
        if (!ctx.signal.aborted) m.updatesRejected.add(1, { reason: isFedmmError(e) ? e.code.toLowerCase() : 'internal' });
        throw e;
      } finally {
        release();
      }
    }),

    getUploadStatus: unary('GetUploadStatus', log, async (req: pb.GetUploadStatusRequest, ctx) => d.uploads.status(tenantOf(ctx), req.taskId, req.round, req.uploadId)),

    acceptTerms: unary('AcceptTerms', log, async (req: pb.AcceptTermsRequest, ctx) => {
      const tenant = tenantOf(ctx);
      const pem = certificatePemOf(ctx);
      const snap = await taskForMember(d.aggregator, tenant, req.taskId);
      if (!req.termsDigest) throw new FedmmError('INVALID_ARGUMENT', 'terms_digest is required: the sha256 of the terms you accept');
      if (snap.task.termsDigest && snap.task.termsDigest !== req.termsDigest) {
        throw new FedmmError('FAILED_PRECONDITION', `the terms of task ${req.taskId} now have digest ${snap.task.termsDigest}, not ${req.termsDigest}; read the current terms (GetTask) and sign their digest`);
      }
      verifyTermsSignature(pem, req.termsDigest, req.signature);
      await d.aggregator.recordTermsAcceptance({ taskId: req.taskId, tenant, termsDigest: req.termsDigest, signature: req.signature, certificatePem: pem });
      return {};
    }),

    sendSecAggMessages: unary('SendSecAggMessages', log, async (req: pb.SendSecAggMessagesRequest, ctx) => {
      const tenant = tenantOf(ctx);
      const round = await selectedRound(d.aggregator, tenant, req.taskId, req.round, 'secagg');
      await d.relay.send(req.taskId, req.round, req.stage, tenant, round.selected, req.messages);
      return {};
    }),

    receiveSecAggMessages: unary('ReceiveSecAggMessages', log, async (req: pb.ReceiveSecAggMessagesRequest, ctx) => {
      const tenant = tenantOf(ctx);
      const round = await selectedRound(d.aggregator, tenant, req.taskId, req.round, 'secagg');
      const waitMs = Math.min(req.waitSeconds, d.secaggMaxWaitSeconds) * 1000;
      const r = await d.relay.receive(req.taskId, req.round, req.stage, tenant, round.selected, waitMs, ctx.signal);
      return { messages: r.messages.map((x) => ({ ...x, payload: Buffer.from(x.payload) })), stageComplete: r.stageComplete };
    }),
  };
  return { name: 'fedmm.v1.GatewayService', definition: pb.GatewayServiceService, implementation: impl };
}

/** Whether the tenant is selected for the task's open round and the version is that round's input. */
async function roundInputGrant(aggregator: AggregatorPort, taskId: string, tenant: string, versionId: string): Promise<boolean> {
  const snap = await aggregator.getTask(taskId).catch(() => undefined);
  const r = snap?.currentRound;
  if (!snap || !r || !snap.task.members.includes(tenant)) return false;
  const open = r.state === taskPb.RoundState.ROUND_STATE_OPEN || r.state === taskPb.RoundState.ROUND_STATE_COLLECTING;
  return open && r.selected.includes(tenant) && r.inputVersionId === versionId;
}
