import { FedmmError, failedPrecondition, invalidArgument } from '@fedmm/core';
import {
  compileRoundConfig,
  encodingOf,
  roundContext,
  ROUND_SEED_BYTES,
  type SecAggConfig,
  type SecAggConfigInput,
} from './config.js';
import { derivePairKey, importPrivateKey, KeyPurpose, publicKeyOf, X25519_KEY_BYTES, x25519 } from './keys.js';
import type {
  CollectMaskedRequest,
  EncryptedShare,
  MaskCorrection,
  MaskedInput,
  PublicKeyEntry,
  SetupRequest,
  SetupResponse,
  ShareKeysRequest,
  ShareKeysResponse,
  UnmaskPlan,
  UnmaskRequest,
  UnmaskResponse,
} from './messages.js';
import { neighbourGraph } from './neighbours.js';
import { MASK_SEED_BYTES } from './prg.js';
import { randomBytesFrom, systemRandom } from './random.js';
import { addInto } from './ring.js';
import { combineShares, SHARE_BYTES } from './shamir.js';
import { decodeSum } from './fixed-point.js';
import { unmaskShard } from './unmask.js';
import type { UnmaskPool } from './unmask-pool.js';
import { sameList } from './validate.js';

/** Where the server is in its round. */
export type ServerStage = 'setup' | 'share-keys' | 'collect-masked' | 'unmask' | 'done' | 'failed';

/** Options of a server round: the round config, with a fresh random round seed by default. */
export type SecAggServerOptions = Omit<SecAggConfigInput, 'roundSeed'> & { readonly roundSeed?: Uint8Array };

/** The outcome of a round: the plan for the shard workers and, if the server summed the inputs itself, the decoded sum. */
export interface SecAggResult {
  readonly plan: UnmaskPlan;
  /** Float sum of the survivors' clipped updates; present when masked vectors were given to `acceptMaskedInput`. */
  readonly sum?: Float32Array;
}

const SEALED_SHARE_BYTES = 2 * SHARE_BYTES + 16;

/**
 * The server side of one SecAgg+ round. The coordinator feeds it the clients' responses and
 * closes each stage at quorum or deadline; whoever has not answered by then counts as dropped.
 * It never sees an unmasked individual input: it reconstructs self-mask seeds only for clients
 * whose input is in the sum and masking keys only for clients whose input is not.
 */
export class SecAggServer {
  readonly config: SecAggConfig;
  private readonly context: Uint8Array;
  private current: ServerStage = 'setup';
  private failure: string | undefined;
  private readonly keys = new Map<string, PublicKeyEntry>();
  private readonly keyOwners = new Map<string, string>();
  private joined: readonly string[] = [];
  private graph = new Map<string, readonly string[]>();
  private readonly sealed = new Map<string, readonly EncryptedShare[]>();
  private shared: readonly string[] = [];
  private readonly inputs = new Set<string>();
  private inputMode: 'vectors' | 'receipts' | undefined;
  private sum: Uint32Array | undefined;
  private survivors: readonly string[] = [];
  private dropped: readonly string[] = [];
  private readonly responses = new Map<string, UnmaskResponse>();

  constructor(options: SecAggServerOptions) {
    this.config = compileRoundConfig({
      ...options,
      roundSeed: options.roundSeed ?? randomBytesFrom(systemRandom, ROUND_SEED_BYTES),
    });
    this.context = roundContext(this.config);
  }

  /** The stage the server is collecting, or 'done' / 'failed'. */
  get stage(): ServerStage {
    return this.current;
  }

  /** Stage 0: the request every selected client receives. */
  setupRequest(): SetupRequest {
    this.expectStage('setup', 'setupRequest');
    return { stage: 'setup', config: this.config };
  }

  /** Stage 0: records a client's public keys. An identical repeat is ignored. */
  acceptSetup(msg: SetupResponse): void {
    this.expectStage('setup', `setup response of ${msg.clientId}`);
    this.checkMessage(msg, 'setup', this.config.participants);
    for (const key of [msg.encryptionPublicKey, msg.maskingPublicKey]) {
      if (!(key instanceof Uint8Array) || key.length !== X25519_KEY_BYTES) {
        throw invalidArgument(`public keys of ${msg.clientId} must be ${X25519_KEY_BYTES} bytes each`);
      }
    }
    const prev = this.keys.get(msg.clientId);
    if (prev !== undefined) {
      if (equal(prev.encryptionPublicKey, msg.encryptionPublicKey) && equal(prev.maskingPublicKey, msg.maskingPublicKey)) return;
      throw invalidArgument(`client ${msg.clientId} already sent different public keys for round ${this.config.roundId}`);
    }
    const enc = hex(msg.encryptionPublicKey);
    const mask = hex(msg.maskingPublicKey);
    // A reused key would let one party stand in for another or pair masks with itself.
    const reused = enc === mask ? msg.clientId : (this.keyOwners.get(enc) ?? this.keyOwners.get(mask));
    if (reused !== undefined) {
      throw invalidArgument(`client ${msg.clientId} sent a public key that is not fresh (it is also a key of ${reused}); generate new keys`);
    }
    this.keyOwners.set(enc, msg.clientId);
    this.keyOwners.set(mask, msg.clientId);
    this.keys.set(msg.clientId, {
      clientId: msg.clientId,
      encryptionPublicKey: new Uint8Array(msg.encryptionPublicKey),
      maskingPublicKey: new Uint8Array(msg.maskingPublicKey),
    });
  }

  /** Closes stage 0; fixes the neighbour graph over the clients that answered and returns one stage-1 request each. */
  closeSetup(): ShareKeysRequest[] {
    this.expectStage('setup', 'closeSetup');
    this.joined = Object.freeze([...this.keys.keys()].sort());
    this.requireQuorum(this.joined.length, 'answered stage 0 (setup)');
    this.graph = neighbourGraph(this.joined, this.config.roundSeed, this.config.numShares);
    this.current = 'share-keys';
    return this.joined.map((clientId) => ({
      stage: 'share-keys',
      roundId: this.config.roundId,
      clientId,
      participants: this.joined,
      publicKeys: this.neighboursOf(clientId).map((n) => this.keys.get(n)!),
    }));
  }

  /** Stage 1: records a client's sealed shares, one for each of its neighbours. An identical repeat is ignored. */
  acceptShareKeys(msg: ShareKeysResponse): void {
    this.expectStage('share-keys', `share-keys response of ${msg.clientId}`);
    this.checkMessage(msg, 'share-keys', this.joined);
    const neighbours = this.neighboursOf(msg.clientId);
    const receivers = msg.encryptedShares.map((s) => s.receiver).sort();
    if (!sameList(receivers, neighbours)) {
      throw invalidArgument(
        `client ${msg.clientId} must send one sealed share to each neighbour [${neighbours.join(', ')}], got [${receivers.join(', ')}]`,
      );
    }
    for (const s of msg.encryptedShares) {
      if (s.sender !== msg.clientId) throw invalidArgument(`client ${msg.clientId} sent a share claiming sender ${s.sender}`);
      if (!(s.nonce instanceof Uint8Array) || s.nonce.length !== 12 || !(s.ciphertext instanceof Uint8Array) || s.ciphertext.length !== SEALED_SHARE_BYTES) {
        throw invalidArgument(`sealed share from ${msg.clientId} to ${s.receiver} is malformed`);
      }
    }
    const prev = this.sealed.get(msg.clientId);
    if (prev !== undefined) {
      const same = prev.every((p) => msg.encryptedShares.some((s) => s.receiver === p.receiver && equal(s.ciphertext, p.ciphertext) && equal(s.nonce, p.nonce)));
      if (same) return;
      throw invalidArgument(`client ${msg.clientId} already sent different shares for round ${this.config.roundId}`);
    }
    this.sealed.set(msg.clientId, msg.encryptedShares.map((s) => ({ ...s, nonce: new Uint8Array(s.nonce), ciphertext: new Uint8Array(s.ciphertext) })));
  }

  /** Closes stage 1; routes each sealed share to its receiver and returns one stage-2 request per client that shared. */
  closeShareKeys(): CollectMaskedRequest[] {
    this.expectStage('share-keys', 'closeShareKeys');
    this.shared = Object.freeze([...this.sealed.keys()].sort());
    this.requireQuorum(this.shared.length, 'shared their keys in stage 1');
    const inbox = new Map<string, EncryptedShare[]>(this.shared.map((c) => [c, []]));
    for (const sender of this.shared) {
      for (const s of this.sealed.get(sender)!) inbox.get(s.receiver)?.push(s);
    }
    this.current = 'collect-masked';
    return this.shared.map((clientId) => ({
      stage: 'collect-masked',
      roundId: this.config.roundId,
      clientId,
      encryptedShares: inbox.get(clientId)!,
    }));
  }

  /**
   * Stage 2: records that a client's masked input arrived. With the vector, the server also sums
   * it; without (the sharded deployment, where vectors go to the shard workers) it records a
   * receipt. One round uses one way or the other. A repeat is ignored.
   */
  acceptMaskedInput(msg: MaskedInput): void {
    this.expectStage('collect-masked', `masked input of ${msg.clientId}`);
    this.checkMessage(msg, 'collect-masked', this.shared);
    if (this.inputs.has(msg.clientId)) return;
    const mode = msg.maskedVector === undefined ? 'receipts' : 'vectors';
    if (this.inputMode !== undefined && this.inputMode !== mode) {
      throw failedPrecondition(
        `round ${this.config.roundId} collects ${this.inputMode}; a ${mode === 'vectors' ? 'vector' : 'receipt'} from ${msg.clientId} cannot be mixed in`,
      );
    }
    if (msg.maskedVector !== undefined) {
      if (!(msg.maskedVector instanceof Uint32Array) || msg.maskedVector.length !== this.config.vectorLength) {
        throw invalidArgument(`masked input of ${msg.clientId} must be a Uint32Array of ${this.config.vectorLength} words`);
      }
      this.sum ??= new Uint32Array(this.config.vectorLength);
      addInto(this.sum, msg.maskedVector);
    }
    this.inputMode = mode;
    this.inputs.add(msg.clientId);
  }

  /**
   * Closes stage 2: later inputs are refused. Fails the round, revealing nothing, when fewer than
   * `threshold` inputs arrived; otherwise returns one stage-3 request per survivor.
   */
  closeCollection(): UnmaskRequest[] {
    this.expectStage('collect-masked', 'closeCollection');
    this.survivors = Object.freeze([...this.inputs].sort());
    this.dropped = Object.freeze(this.shared.filter((c) => !this.inputs.has(c)));
    this.requireQuorum(this.survivors.length, 'sent a masked input in stage 2');
    this.current = 'unmask';
    return this.survivors.map((clientId) => ({
      stage: 'unmask',
      roundId: this.config.roundId,
      clientId,
      survivors: this.survivors,
      dropped: this.dropped,
    }));
  }

  /** Stage 3: records a survivor's shares after checking they are exactly those it holds. An identical repeat is ignored. */
  acceptUnmask(msg: UnmaskResponse): void {
    this.expectStage('unmask', `unmask response of ${msg.clientId}`);
    this.checkMessage(msg, 'unmask', this.survivors);
    if (this.responses.has(msg.clientId)) return;
    const held = new Set([msg.clientId, ...this.neighboursOf(msg.clientId).filter((n) => this.sealed.has(n))]);
    const wantSeeds = this.survivors.filter((s) => held.has(s));
    const wantKeys = this.dropped.filter((d) => held.has(d));
    const gotSeeds = msg.seedShares.map((s) => s.owner).sort();
    const gotKeys = msg.keyShares.map((s) => s.owner).sort();
    if (!sameList(gotSeeds, wantSeeds) || !sameList(gotKeys, wantKeys)) {
      throw invalidArgument(
        `client ${msg.clientId} must reveal seed shares of [${wantSeeds.join(', ')}] and key shares of [${wantKeys.join(', ')}], ` +
          `got seeds of [${gotSeeds.join(', ')}] and keys of [${gotKeys.join(', ')}]`,
      );
    }
    for (const s of [...msg.seedShares, ...msg.keyShares]) {
      if (!(s.share instanceof Uint8Array) || s.share.length !== SHARE_BYTES) {
        throw invalidArgument(`share of ${s.owner} from ${msg.clientId} must be ${SHARE_BYTES} bytes`);
      }
    }
    this.responses.set(msg.clientId, msg);
  }

  /**
   * Closes stage 3 and reconstructs: each survivor's self-mask seed and each dropped client's
   * masking key, from which the pairwise masks its surviving neighbours added are recomputed.
   * Fails the round before combining anything when some secret has fewer than `threshold` shares.
   * With `pool`, the server's own sum (if it summed the inputs) is unmasked over its threads.
   */
  async finish(options: { readonly pool?: UnmaskPool } = {}): Promise<SecAggResult> {
    this.expectStage('unmask', 'finish');
    const { threshold } = this.config;
    const seedShares = this.collect((r) => r.seedShares);
    const keyShares = this.collect((r) => r.keyShares);
    // Only a dropped client with a surviving neighbour left a mask in the sum.
    const needKeys = this.dropped.filter((d) => this.neighboursOf(d).some((n) => this.inputs.has(n)));
    const short = [
      ...this.survivors.filter((s) => (seedShares.get(s)?.length ?? 0) < threshold).map((s) => `self-mask seed of ${s}`),
      ...needKeys.filter((d) => (keyShares.get(d)?.length ?? 0) < threshold).map((d) => `masking key of ${d}`),
    ];
    if (short.length > 0) {
      this.fail(
        `round ${this.config.roundId} cannot be unmasked: fewer than threshold ${threshold} shares arrived for the ` +
          `${short.join(', ')}; ${this.responses.size} of ${this.survivors.length} survivors answered stage 3`,
      );
    }
    const corrections: MaskCorrection[] = [];
    for (const s of this.survivors) {
      corrections.push({ seed: await combineShares(seedShares.get(s)!, MASK_SEED_BYTES), sign: 1 });
    }
    for (const d of needKeys) {
      const secretKey = await combineShares(keyShares.get(d)!, X25519_KEY_BYTES);
      const keyObject = importPrivateKey(secretKey);
      if (!equal(publicKeyOf(keyObject), this.keys.get(d)!.maskingPublicKey)) {
        this.fail(`the masking key of ${d} reconstructed from its shares does not match its public key; a share was corrupted in transit or by a client`, 'DATA_LOSS');
      }
      for (const s of this.neighboursOf(d).filter((n) => this.inputs.has(n))) {
        const seed = derivePairKey(x25519(keyObject, this.keys.get(s)!.maskingPublicKey), this.context, KeyPurpose.pairwiseMask, s, d);
        corrections.push({ seed, sign: s < d ? 1 : -1 });
      }
      secretKey.fill(0);
    }
    const plan: UnmaskPlan = Object.freeze({
      roundId: this.config.roundId,
      vectorLength: this.config.vectorLength,
      survivors: this.survivors,
      corrections: Object.freeze(corrections),
      encoding: encodingOf(this.config),
    });
    this.current = 'done';
    this.responses.clear();
    if (this.sum === undefined) return { plan };
    const maskedSum = this.sum;
    this.sum = undefined;
    const unmasked = options.pool === undefined
      ? unmaskShard({ plan, maskedSum, offset: 0 })
      : await options.pool.unmaskShard({ plan, maskedSum, offset: 0 });
    return { plan, sum: decodeSum(unmasked, plan.survivors.length, plan.encoding) };
  }

  /** Ends the round without a result (deadline, operator abort); drops every share collected. */
  abort(reason: string): void {
    if (this.current === 'done' || this.current === 'failed') return;
    this.current = 'failed';
    this.failure = reason;
    this.responses.clear();
    this.sealed.clear();
    this.sum = undefined;
  }

  /** The neighbours of a client in this round's graph (empty before stage 0 closes). */
  neighboursOf(clientId: string): readonly string[] {
    return this.graph.get(clientId) ?? [];
  }

  private collect(pick: (r: UnmaskResponse) => readonly { owner: string; share: Uint8Array }[]): Map<string, Uint8Array[]> {
    const out = new Map<string, Uint8Array[]>();
    for (const r of this.responses.values()) {
      for (const { owner, share } of pick(r)) {
        const list = out.get(owner) ?? [];
        list.push(share);
        out.set(owner, list);
      }
    }
    return out;
  }

  private requireQuorum(count: number, what: string): void {
    if (count < this.config.threshold) {
      this.fail(
        `round ${this.config.roundId} fails: only ${count} clients ${what}, below threshold ${this.config.threshold}; ` +
          'no shares were requested or revealed',
      );
    }
  }

  private fail(message: string, code: 'FAILED_PRECONDITION' | 'DATA_LOSS' = 'FAILED_PRECONDITION'): never {
    this.abort(message);
    throw new FedmmError(code, message, { roundId: this.config.roundId });
  }

  private expectStage(stage: ServerStage, what: string): void {
    if (this.current === stage) return;
    if (this.current === 'failed') {
      throw failedPrecondition(`round ${this.config.roundId} has failed (${this.failure}); ${what} is not accepted`);
    }
    throw failedPrecondition(
      `round ${this.config.roundId} is at stage '${this.current}', not '${stage}'; ${what} is not accepted` +
        (stageIndex(this.current) > stageIndex(stage) ? ' (the stage has closed and the client counts as dropped)' : ''),
    );
  }

  private checkMessage(msg: { stage: string; roundId: string; clientId: string }, stage: string, allowed: readonly string[]): void {
    if (msg.stage !== stage) throw invalidArgument(`expected a '${stage}' message, got stage '${msg.stage}'`);
    if (msg.roundId !== this.config.roundId) {
      throw invalidArgument(`message from ${msg.clientId} is for round ${msg.roundId}, not ${this.config.roundId}`);
    }
    if (!allowed.includes(msg.clientId)) {
      throw invalidArgument(`client ${msg.clientId} is not a member of round ${this.config.roundId} at stage '${stage}'`);
    }
  }
}

const STAGES: readonly ServerStage[] = ['setup', 'share-keys', 'collect-masked', 'unmask', 'done'];
function stageIndex(s: ServerStage): number {
  return STAGES.indexOf(s);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
