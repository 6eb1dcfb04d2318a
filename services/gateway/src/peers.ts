import type { ChannelCredentials } from '@grpc/grpc-js';
import { FedmmError, type Logger } from '@fedmm/core';
import { aggregator as apb, registry as rpb } from '@fedmm/proto';
import { createRpcClient, type RpcClient } from '@fedmm/service-kit';
import type { AggregatorPort, TaskSnapshot, UploadPolicy, UpdateReport } from './domain/types.js';
import { policyFromPb } from './handlers/convert.js';

const PEER_DEADLINE_MS = 15_000;

/** The aggregator (coordinator) over gRPC. */
export class AggregatorClient implements AggregatorPort {
  readonly rpc: RpcClient<typeof apb.AggregatorServiceService>;

  constructor(address: string, creds: ChannelCredentials, private readonly log: Logger) {
    this.rpc = createRpcClient(apb.AggregatorServiceService, address, creds);
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw peerError(e instanceof FedmmError ? e : new FedmmError('INTERNAL', String(e)), this.log, 'coordinator');
    }
  }

  async getUploadPolicy(taskId: string, round: number, tenant: string): Promise<UploadPolicy> {
    return policyFromPb(await this.#call(() => this.rpc.getUploadPolicy({ taskId, round, tenant }, { deadlineMs: PEER_DEADLINE_MS })));
  }

  async reportUpdateReceived(r: UpdateReport): Promise<void> {
    await this.#call(() => this.rpc.reportUpdateReceived({ ...r, tensors: [...r.tensors] }, { deadlineMs: PEER_DEADLINE_MS }));
  }

  async getTask(taskId: string): Promise<TaskSnapshot> {
    return this.#call(() => this.#getTask(taskId));
  }

  async #getTask(taskId: string): Promise<TaskSnapshot> {
    const { task } = await this.rpc.getTask({ taskId }, { deadlineMs: PEER_DEADLINE_MS });
    if (!task) throw new FedmmError('NOT_FOUND', `task ${JSON.stringify(taskId)} does not exist`);
    let currentRound;
    if (task.currentRound > 0) {
      try {
        currentRound = (await this.rpc.getRound({ taskId, number: task.currentRound }, { deadlineMs: PEER_DEADLINE_MS })).round;
      } catch (e) {
        if (!(e instanceof FedmmError && e.code === 'NOT_FOUND')) throw e;
      }
    }
    return { task, currentRound };
  }

  async recordTermsAcceptance(input: { taskId: string; tenant: string; termsDigest: string; signature: Uint8Array; certificatePem: string }): Promise<void> {
    await this.#call(() => this.rpc.recordTermsAcceptance({ ...input, signature: Buffer.from(input.signature) }, { deadlineMs: PEER_DEADLINE_MS }));
  }

  close(): void {
    this.rpc.close();
  }
}

/** The registry client the gateway proxies downloads through. */
export function registryClient(address: string, creds: ChannelCredentials): RpcClient<typeof rpb.RegistryServiceService> {
  // HTTP/2's default 64 KiB window stalls 1 MiB chunks on a round trip each 64 KiB; a few MiB keep
  // downloads streaming while still bounding what one download buffers here.
  return createRpcClient(rpb.RegistryServiceService, address, creds, { 'grpc-node.flow_control_window': 4 * 1024 * 1024 });
}

const PASS_THROUGH = new Set(['INVALID_ARGUMENT', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'FAILED_PRECONDITION', 'RESOURCE_EXHAUSTED', 'OUT_OF_RANGE', 'DATA_LOSS']);

/**
 * A peer's error as the gateway's client sees it: codes the client can act on keep their message
 * (without the peer's address); anything else becomes UNAVAILABLE, logged here, without internals.
 */
export function peerError(e: FedmmError, log: Logger, peer: string): FedmmError {
  const message = e.message.replace(/^(\/[\w.]+\/\w+ at \S+|registry): /, '');
  if (PASS_THROUGH.has(e.code)) return new FedmmError(e.code, message);
  log.warn('peer call failed', { peer, code: e.code, err: e.message });
  return new FedmmError('UNAVAILABLE', `the ${peer} did not answer (${e.code}); retry shortly`);
}
