import type { ChannelCredentials } from '@grpc/grpc-js';
import { privacy as pb } from '@fedmm/proto';
import { createRpcClient, type RpcClient } from '@fedmm/service-kit';
import type { AccountantKind } from '@fedmm/dp';
import type { MechanismEvent, ReserveResult } from './domain/types.js';

export interface PrivacyClientOptions {
  /** Peer credentials (ServiceContext.peerCredentials); insecure when absent. */
  readonly credentials?: ChannelCredentials;
  /** Deadline of each call (default 30 s). */
  readonly deadlineMs?: number;
}

/**
 * Typed client of the privacy service for the coordinator: reserve a round's spend before it opens,
 * commit after publication, release when the round fails. Errors arrive as FedmmError with the
 * service's code (RESOURCE_EXHAUSTED: a budget would be exceeded).
 */
export class PrivacyClient {
  private readonly rpc: RpcClient<typeof pb.PrivacyServiceService>;
  private readonly deadlineMs: number;

  constructor(address: string, opts: PrivacyClientOptions = {}) {
    this.rpc = createRpcClient(pb.PrivacyServiceService, address, opts.credentials);
    this.deadlineMs = opts.deadlineMs ?? 30_000;
  }

  /** Reserves a round's events; retrying with the same (taskId, round, attempt) returns the same reservation. */
  async reserve(req: { taskId: string; round: number; attempt: number; events: readonly MechanismEvent[]; delta?: number; accountant?: AccountantKind }): Promise<ReserveResult> {
    const res = await this.rpc.reserve(
      { taskId: req.taskId, round: req.round, attempt: req.attempt, events: [...req.events], delta: req.delta ?? 0, accountant: req.accountant ?? '' },
      { deadlineMs: this.deadlineMs },
    );
    return { reservationId: res.reservationId, epsilonByTenant: res.epsilonByTenant };
  }

  /** Commits a reservation, optionally with the events that actually ran (never more than reserved); returns committed epsilon per tenant in the task. */
  async commit(reservationId: string, events: readonly MechanismEvent[] = []): Promise<Record<string, number>> {
    return (await this.rpc.commit({ reservationId, events: [...events] }, { deadlineMs: this.deadlineMs })).epsilonByTenant;
  }

  /** Releases a reservation whose round failed. */
  async release(reservationId: string, reason: string): Promise<void> {
    await this.rpc.release({ reservationId, reason }, { deadlineMs: this.deadlineMs });
  }

  /** Committed epsilon per tenant in a task (for reports). */
  async spentByTenant(taskId: string): Promise<Record<string, number>> {
    return (await this.rpc.getLedger({ taskId, tenant: '' }, { deadlineMs: this.deadlineMs })).epsilonByTenant;
  }

  /** The raw generated client, for the calls this helper does not wrap. */
  get raw(): RpcClient<typeof pb.PrivacyServiceService> {
    return this.rpc;
  }

  close(): void {
    this.rpc.close();
  }
}
