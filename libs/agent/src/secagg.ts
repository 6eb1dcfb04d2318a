import { FedmmError, sleep, type Logger } from '@fedmm/core';
import {
  decodeSecAggMessage, encodeSecAggMessage, relayStageOf, SecAggClient, SECAGG_SERVER_PARTY,
  type CollectMaskedRequest, type SetupRequest, type ShareKeysRequest, type UnmaskRequest,
} from '@fedmm/secagg';
import { sha256Hex, type TensorLayout } from '@fedmm/tensor';
import type { GatewayConnection } from './connection.js';
import type { UpdatePayload } from './update-payload.js';

/** One secure round as an agent sees it. */
export interface SecureRoundOptions {
  readonly connection: GatewayConnection;
  readonly taskId: string;
  readonly round: number;
  readonly attempt: number;
  readonly tenant: string;
  /** The round's deadline: every request of the coordinator is posted by then. */
  readonly deadlineUnixMs: number;
  readonly log: Logger;
  /** Longest single long-poll of the relay (the gateway caps it too). */
  readonly pollSeconds?: number;
}

/** How long after the round's deadline an agent still waits for a request (the unmask stage follows the seal). */
const GRACE_MS = 60_000;

/**
 * The client side of one SecAgg+ round over the gateway's relay: receives each stage's request
 * from the coordinator (long-polling ReceiveSecAggMessages) and sends the answer to it. The
 * protocol state (key pairs, shares held for neighbours) lives only in this object: an agent that
 * restarts mid-round has lost it and counts as dropped, which the protocol tolerates.
 */
export class SecAggSession {
  readonly roundId: string;
  readonly #client: SecAggClient;

  constructor(private readonly o: SecureRoundOptions) {
    this.roundId = `${o.taskId}/${o.round}/${o.attempt}`;
    this.#client = new SecAggClient({ clientId: o.tenant });
  }

  /** Stages 0 and 1: announces fresh public keys, then seals one share pair for each neighbour. */
  async handshake(signal?: AbortSignal): Promise<void> {
    const setup = await this.#request<SetupRequest>('setup', (m) => m.config.roundId, signal);
    await this.#answer('setup', this.#client.setup(setup), signal);
    const keys = await this.#request<ShareKeysRequest>('share-keys', (m) => m.roundId, signal);
    await this.#answer('share-keys', await this.#client.shareKeys(keys), signal);
  }

  /** Stage 2: waits for the neighbours' sealed shares, clips the update to `clipNorm` (L2) and masks it. */
  async mask(update: Float32Array, clipNorm: number, signal?: AbortSignal): Promise<Uint32Array> {
    const req = await this.#request<CollectMaskedRequest>('collect-masked', (m) => m.roundId, signal);
    const masked = this.#client.maskInput(req, clipToNorm(update, clipNorm));
    return masked.maskedVector!;
  }

  /** Stage 3: reveals the shares the coordinator asks for, once. */
  async unmask(signal?: AbortSignal): Promise<void> {
    const req = await this.#request<UnmaskRequest>('unmask', (m) => m.roundId, signal);
    await this.#answer('unmask', this.#client.unmask(req), signal);
  }

  async #answer(stage: 'setup' | 'share-keys' | 'unmask', msg: object, signal?: AbortSignal): Promise<void> {
    await this.o.connection.sendSecAggMessages(this.o.taskId, this.o.round, relayStageOf(stage), [{ to: SECAGG_SERVER_PARTY, payload: encodeSecAggMessage(msg) }], signal);
  }

  /** The coordinator's request of a stage for this attempt; a request left over from an earlier attempt is skipped. */
  async #request<T extends { stage: string }>(stage: T['stage'] & ('setup' | 'share-keys' | 'collect-masked' | 'unmask'), roundIdOf: (m: T) => string, signal?: AbortSignal): Promise<T> {
    const limit = this.o.deadlineUnixMs > 0 ? this.o.deadlineUnixMs + GRACE_MS : Number.POSITIVE_INFINITY;
    for (;;) {
      if (signal?.aborted) throw new FedmmError('ABORTED', 'the agent is stopping');
      const left = limit - Date.now();
      if (left <= 0) {
        throw new FedmmError('DEADLINE_EXCEEDED', `no secure-aggregation '${stage}' request for round ${this.o.round} of task ${this.o.taskId} arrived by the deadline; the round went on without this client`);
      }
      const wait = Math.max(1, Math.min(this.o.pollSeconds ?? 20, Math.ceil(left / 1000)));
      const res = await this.o.connection.receiveSecAggMessages(this.o.taskId, this.o.round, relayStageOf(stage), wait, signal);
      const fromServer = res.messages.find((m) => m.from === SECAGG_SERVER_PARTY);
      if (fromServer) {
        const msg = decodeSecAggMessage<T>(fromServer.payload, stage);
        if (roundIdOf(msg) === this.roundId) return msg;
        this.o.log.debug('skipping a secure-aggregation request of another attempt', { stage, roundId: roundIdOf(msg) });
      }
      // The relay answers at once while a stale request sits there: do not spin.
      await sleep(fromServer ? 250 : 0, signal).catch(() => undefined);
    }
  }
}

/** Scales a vector down to L2 norm `clipNorm` when it is longer (a copy; the input is left as is). */
export function clipToNorm(v: Float32Array, clipNorm: number): Float32Array {
  let ss = 0;
  for (let i = 0; i < v.length; i++) ss += v[i]! * v[i]!;
  const norm = Math.sqrt(ss);
  const out = new Float32Array(v);
  if (clipNorm > 0 && norm > clipNorm) {
    const s = clipNorm / norm;
    for (let i = 0; i < out.length; i++) out[i] = out[i]! * s;
  }
  return out;
}

/** The update as one vector over the payload's layout (F32 payloads only), a view of its bytes when aligned. */
export function flattenUpdate(payload: UpdatePayload): Float32Array {
  const b = payload.bytes;
  if (b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  return new Float32Array(b.slice().buffer);
}

/** The upload payload of a secure round: the masked words over the round's layout, sent as 4-byte words declared F32. */
export function maskedPayload(layout: TensorLayout, words: Uint32Array): UpdatePayload {
  if (words.length !== layout.totalElements) {
    throw new FedmmError('INVALID_ARGUMENT', `the masked vector has ${words.length} words but the round's layout has ${layout.totalElements} coordinates`);
  }
  const bytes = new Uint8Array(words.buffer.slice(words.byteOffset, words.byteOffset + words.byteLength));
  return { layout, bytes, sha256: sha256Hex(bytes) };
}
