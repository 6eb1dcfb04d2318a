import { failedPrecondition, invalidArgument } from '@fedmm/core';
import { compileRoundConfig, encodingOf, roundContext, type SecAggConfig } from './config.js';
import { derivePairKey, generateKeyPair, KeyPurpose, X25519_KEY_BYTES, x25519, type RawKeyPair } from './keys.js';
import type {
  CollectMaskedRequest,
  EncryptedShare,
  MaskedInput,
  OwnedShare,
  PublicKeyEntry,
  SetupRequest,
  SetupResponse,
  ShareKeysRequest,
  ShareKeysResponse,
  UnmaskRequest,
  UnmaskResponse,
} from './messages.js';
import { neighbourGraph } from './neighbours.js';
import { encodeMasked, MASK_SEED_BYTES } from './prg.js';
import { randomBytesFrom, systemRandom, type RandomSource } from './random.js';
import { openShare, sealShare, shareAssociatedData } from './share-cipher.js';
import { SHARE_BYTES, splitSecret } from './shamir.js';
import { checkIdList, sameList } from './validate.js';

/** Where a client is in its round. */
export type ClientStage = 'setup' | 'share-keys' | 'collect-masked' | 'unmask' | 'done';

export interface SecAggClientOptions {
  readonly clientId: string;
  /** Secret randomness; the OS CSPRNG unless a test needs reproducible rounds. */
  readonly random?: RandomSource;
}

interface HeldShares {
  readonly seedShare: Uint8Array;
  readonly keyShare: Uint8Array;
}

/**
 * The client side of one SecAgg+ round. Call the stage methods in order with the server's
 * requests; each validates what the server claims before the client commits to anything, and
 * the unmask stage answers once, so no peer ever has both of its shares revealed by this client.
 */
export class SecAggClient {
  readonly clientId: string;
  private readonly random: RandomSource;
  private current: ClientStage = 'setup';
  private config: SecAggConfig | undefined;
  private context: Uint8Array = new Uint8Array(0);
  private encryptionKeys: RawKeyPair | undefined;
  private maskingKeys: RawKeyPair | undefined;
  private selfSeed: Uint8Array | undefined;
  private participants: readonly string[] = [];
  private readonly peers = new Map<string, PublicKeyEntry>();
  private readonly held = new Map<string, HeldShares>();
  private readonly sealingKeys = new Map<string, Uint8Array>();
  private maskPeers: readonly string[] = [];
  private answered: { request: UnmaskRequest; response: UnmaskResponse } | undefined;

  constructor(options: SecAggClientOptions) {
    if (typeof options.clientId !== 'string' || options.clientId.length === 0) {
      throw invalidArgument('SecAggClient needs a non-empty clientId');
    }
    this.clientId = options.clientId;
    this.random = options.random ?? systemRandom;
  }

  /** The next stage this client expects. */
  get stage(): ClientStage {
    return this.current;
  }

  /** The peers whose pairwise masks this client's masked input carries (after stage 2). */
  get maskedWith(): readonly string[] {
    return this.maskPeers;
  }

  /** Stage 0: checks the round configuration and answers with two fresh public keys. */
  setup(request: SetupRequest): SetupResponse {
    this.expectStage('setup', request.stage);
    const config = compileRoundConfig(request.config);
    if (!config.participants.includes(this.clientId)) {
      throw invalidArgument(`client ${this.clientId} is not a participant of round ${config.roundId}`);
    }
    this.config = config;
    this.context = roundContext(config);
    this.encryptionKeys = generateKeyPair(this.random);
    this.maskingKeys = generateKeyPair(this.random);
    this.current = 'share-keys';
    return {
      stage: 'setup',
      roundId: config.roundId,
      clientId: this.clientId,
      encryptionPublicKey: this.encryptionKeys.publicKey,
      maskingPublicKey: this.maskingKeys.publicKey,
    };
  }

  /**
   * Stage 1: recomputes its neighbours from the announced participants, Shamir-splits its
   * self-mask seed and its masking private key, and seals one share pair for each neighbour.
   */
  async shareKeys(request: ShareKeysRequest): Promise<ShareKeysResponse> {
    const config = this.inRound('share-keys', request);
    const participants = checkIdList(request.participants, 'participants of stage 1');
    const unknown = participants.find((p) => !config.participants.includes(p));
    if (unknown !== undefined) throw invalidArgument(`stage 1 names ${unknown}, who was not selected for round ${config.roundId}`);
    if (!participants.includes(this.clientId)) {
      throw invalidArgument(`stage 1 participants omit this client (${this.clientId})`);
    }
    if (participants.length < config.threshold) {
      throw failedPrecondition(
        `only ${participants.length} clients joined round ${config.roundId}; threshold ${config.threshold} cannot be met, so no shares are made`,
      );
    }
    const neighbours = neighbourGraph(participants, config.roundSeed, config.numShares).get(this.clientId)!;
    const given = new Map(request.publicKeys.map((k) => [k.clientId, k]));
    if (given.size !== request.publicKeys.length || !sameList([...given.keys()].sort(), neighbours)) {
      throw invalidArgument(
        `stage 1 must carry the public keys of exactly this client's neighbours [${neighbours.join(', ')}], ` +
          `got [${request.publicKeys.map((k) => k.clientId).join(', ')}]`,
      );
    }
    const own = this.encryptionKeys!;
    const mask = this.maskingKeys!;
    const seen = new Set([hex(own.publicKey), hex(mask.publicKey)]);
    for (const entry of request.publicKeys) {
      for (const key of [entry.encryptionPublicKey, entry.maskingPublicKey]) {
        if (!(key instanceof Uint8Array) || key.length !== X25519_KEY_BYTES) {
          throw invalidArgument(`public key of ${entry.clientId} must be ${X25519_KEY_BYTES} bytes`);
        }
        // A repeated key would let one party stand in for several neighbours.
        if (seen.has(hex(key))) throw invalidArgument(`public key of ${entry.clientId} repeats another client's key`);
        seen.add(hex(key));
      }
    }
    this.participants = participants;
    for (const entry of request.publicKeys) this.peers.set(entry.clientId, entry);

    const selfSeed = randomBytesFrom(this.random, MASK_SEED_BYTES);
    const count = neighbours.length + 1;
    const seedShares = await splitSecret(selfSeed, count, config.threshold);
    const keyShares = await splitSecret(mask.privateKey, count, config.threshold);
    this.selfSeed = selfSeed;
    this.held.set(this.clientId, { seedShare: seedShares[0]!, keyShare: keyShares[0]! });
    const encryptedShares: EncryptedShare[] = neighbours.map((peer, k) => {
      const plaintext = new Uint8Array(2 * SHARE_BYTES);
      plaintext.set(seedShares[k + 1]!, 0);
      plaintext.set(keyShares[k + 1]!, SHARE_BYTES);
      const sealed = sealShare(this.shareKey(peer), shareAssociatedData(this.context, this.clientId, peer), plaintext, this.random);
      return { sender: this.clientId, receiver: peer, nonce: sealed.nonce, ciphertext: sealed.ciphertext };
    });
    this.current = 'collect-masked';
    return { stage: 'share-keys', roundId: config.roundId, clientId: this.clientId, encryptedShares };
  }

  /**
   * Stage 2: opens the shares addressed to it, then encodes `update` (clipped, fixed point) and
   * adds its self mask and one pairwise mask per neighbour that shared keys.
   */
  maskInput(request: CollectMaskedRequest, update: Float32Array): MaskedInput {
    const config = this.inRound('collect-masked', request);
    if (!(update instanceof Float32Array) || update.length !== config.vectorLength) {
      throw invalidArgument(
        `update must be a Float32Array of ${config.vectorLength} coordinates, got ${update?.length ?? 'none'}`,
      );
    }
    const opened = new Map<string, HeldShares>();
    for (const sealed of request.encryptedShares) {
      if (sealed.receiver !== this.clientId) throw invalidArgument(`a share addressed to ${sealed.receiver} was delivered to ${this.clientId}`);
      if (!this.peers.has(sealed.sender)) throw invalidArgument(`a share came from ${sealed.sender}, who is not a neighbour of ${this.clientId}`);
      if (opened.has(sealed.sender)) throw invalidArgument(`two shares came from ${sealed.sender}`);
      const plaintext = openShare(
        this.shareKey(sealed.sender),
        shareAssociatedData(this.context, sealed.sender, this.clientId),
        sealed.nonce,
        sealed.ciphertext,
        `share from ${sealed.sender} to ${this.clientId}`,
      );
      if (plaintext.length !== 2 * SHARE_BYTES) throw invalidArgument(`share from ${sealed.sender} has the wrong length`);
      opened.set(sealed.sender, { seedShare: plaintext.slice(0, SHARE_BYTES), keyShare: plaintext.slice(SHARE_BYTES) });
    }
    if (opened.size + 1 < config.threshold) {
      throw failedPrecondition(
        `only ${opened.size} neighbours of ${this.clientId} shared keys; with this client that is below threshold ` +
          `${config.threshold}, so its masks could not be removed after a dropout; it sends no input this round`,
      );
    }
    for (const [owner, shares] of opened) this.held.set(owner, shares);
    this.maskPeers = Object.freeze([...opened.keys()].sort());

    const masked = encodeMasked(update, encodingOf(config), [
      { seed: this.selfSeed!, sign: 1 },
      ...this.maskPeers.map((peer) => ({ seed: this.pairwiseSeed(peer), sign: this.clientId < peer ? (1 as const) : (-1 as const) })),
    ], this.random);
    this.current = 'unmask';
    return { stage: 'collect-masked', roundId: config.roundId, clientId: this.clientId, maskedVector: masked };
  }

  /**
   * Stage 3: reveals seed shares of survivors and masking-key shares of dropped clients. It
   * refuses lists that overlap, omit this client or fall below the threshold, and answers only
   * once: a repeated identical request gets the same answer, any other request an error.
   */
  unmask(request: UnmaskRequest): UnmaskResponse {
    if (this.answered !== undefined) {
      const prev = this.answered.request;
      if (request.roundId === prev.roundId && sameList(request.survivors, prev.survivors) && sameList(request.dropped, prev.dropped)) {
        return this.answered.response;
      }
      throw failedPrecondition(
        `client ${this.clientId} already answered the unmask request of round ${prev.roundId}; it answers only once, so that no peer has both shares revealed`,
      );
    }
    const config = this.inRound('unmask', request);
    const survivors = checkIdList(request.survivors, 'survivors');
    const dropped = checkIdList(request.dropped, 'dropped clients');
    const both = survivors.find((s) => dropped.includes(s));
    if (both !== undefined) {
      throw invalidArgument(`${both} is listed both as survivor and as dropped; no share is revealed`);
    }
    const stranger = [...survivors, ...dropped].find((p) => !this.participants.includes(p));
    if (stranger !== undefined) throw invalidArgument(`${stranger} did not take part in stage 1 of round ${config.roundId}`);
    if (!survivors.includes(this.clientId)) {
      throw invalidArgument(`the survivors omit ${this.clientId}, which sent its masked input; no share is revealed`);
    }
    if (survivors.length < config.threshold) {
      throw failedPrecondition(
        `only ${survivors.length} survivors in round ${config.roundId}, below threshold ${config.threshold}; no share is revealed`,
      );
    }
    const seedShares: OwnedShare[] = [];
    const keyShares: OwnedShare[] = [];
    for (const owner of survivors) {
      const h = this.held.get(owner);
      if (h !== undefined) seedShares.push({ owner, share: h.seedShare });
    }
    for (const owner of dropped) {
      const h = this.held.get(owner);
      if (h !== undefined) keyShares.push({ owner, share: h.keyShare });
    }
    const response: UnmaskResponse = { stage: 'unmask', roundId: config.roundId, clientId: this.clientId, seedShares, keyShares };
    this.answered = { request: { ...request, survivors: [...request.survivors], dropped: [...request.dropped] }, response };
    this.current = 'done';
    return response;
  }

  private expectStage(stage: ClientStage, got: string): void {
    if (got !== stage) throw invalidArgument(`expected a '${stage}' request, got stage '${got}'`);
    if (this.current !== stage) {
      throw failedPrecondition(`client ${this.clientId} is at stage '${this.current}' and cannot handle a '${stage}' request`);
    }
  }

  /** Checks the stage and the addressing of a request after stage 0 and returns the round's config. */
  private inRound(stage: ClientStage, request: { stage: string; roundId: string; clientId: string }): SecAggConfig {
    this.expectStage(stage, request.stage);
    const config = this.config!;
    if (request.roundId !== config.roundId) {
      throw invalidArgument(`request is for round ${request.roundId}, but client ${this.clientId} is in round ${config.roundId}`);
    }
    if (request.clientId !== this.clientId) {
      throw invalidArgument(`request addressed to ${request.clientId} was delivered to ${this.clientId}`);
    }
    return config;
  }

  private shareKey(peer: string): Uint8Array {
    const cached = this.sealingKeys.get(peer);
    if (cached !== undefined) return cached;
    const secret = x25519(this.encryptionKeys!.privateKeyObject, this.peers.get(peer)!.encryptionPublicKey);
    const key = derivePairKey(secret, this.context, KeyPurpose.shareEncryption, this.clientId, peer);
    this.sealingKeys.set(peer, key);
    return key;
  }

  private pairwiseSeed(peer: string): Uint8Array {
    const secret = x25519(this.maskingKeys!.privateKeyObject, this.peers.get(peer)!.maskingPublicKey);
    return derivePairKey(secret, this.context, KeyPurpose.pairwiseMask, this.clientId, peer);
  }
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
