import type { ChannelCredentials } from '@grpc/grpc-js';
import { valuation as pb } from '@fedmm/proto';
import { createRpcClient, type RpcClient } from '@fedmm/service-kit';

/** The valuation service over gRPC; its scoreRound is the aggregator's ValuationPort. */
export class ValuationClient {
  readonly #client: RpcClient<typeof pb.ValuationServiceService>;
  readonly #deadlineMs: number;

  constructor(address: string, creds?: ChannelCredentials, options: { deadlineMs?: number } = {}) {
    this.#client = createRpcClient(pb.ValuationServiceService, address, creds);
    // Scoring evaluates up to 2^6 candidate models and may wait for the round's updates.
    this.#deadlineMs = options.deadlineMs ?? 10 * 60_000;
  }

  /** Scores a published round (idempotent). */
  async scoreRound(taskId: string, round: number): Promise<void> {
    await this.score(taskId, round);
  }

  /** Scores a published round and returns the service's answer. */
  score(taskId: string, round: number): Promise<pb.ScoreRoundResponse> {
    return this.#client.scoreRound({ taskId, round }, { deadlineMs: this.#deadlineMs });
  }

  /** The task's contribution table and per-round values. */
  contributions(taskId: string): Promise<pb.GetContributionsResponse> {
    return this.#client.getContributions({ taskId }, { deadlineMs: 30_000 });
  }

  close(): void {
    this.#client.close();
  }
}
