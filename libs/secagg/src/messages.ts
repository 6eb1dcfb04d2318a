import type { SecAggConfig } from './config.js';
import type { FixedPointParams } from './fixed-point.js';

// The messages of one round, as plain objects with binary fields. The library never sends
// anything: the gateway relays each request to the client it names and each response back to
// the coordinator. Stages follow Flower's SecAgg+: 0 setup, 1 share keys, 2 collect masked
// vectors, 3 unmask.

/** Stage 0, server to every selected client: the round configuration. */
export interface SetupRequest {
  readonly stage: 'setup';
  readonly config: SecAggConfig;
}

/** Stage 0, client to server: two fresh X25519 public keys (Bonawitz et al.: c for encryption, s for masks). */
export interface SetupResponse {
  readonly stage: 'setup';
  readonly roundId: string;
  readonly clientId: string;
  readonly encryptionPublicKey: Uint8Array;
  readonly maskingPublicKey: Uint8Array;
}

/** A client's public keys as the server relays them. */
export interface PublicKeyEntry {
  readonly clientId: string;
  readonly encryptionPublicKey: Uint8Array;
  readonly maskingPublicKey: Uint8Array;
}

/** Stage 1, server to one client: who is still in (fixes the graph) and its neighbours' keys. */
export interface ShareKeysRequest {
  readonly stage: 'share-keys';
  readonly roundId: string;
  readonly clientId: string;
  /** Every client that answered stage 0, sorted; the neighbour graph is computed over these. */
  readonly participants: readonly string[];
  /** Public keys of exactly this client's neighbours. */
  readonly publicKeys: readonly PublicKeyEntry[];
}

/**
 * One client's Shamir shares for one neighbour (its self-mask seed share and its masking-key
 * share), sealed with AES-256-GCM under a key only the two of them can derive; the associated
 * data binds round, sender and receiver. The gateway relays it unopened.
 */
export interface EncryptedShare {
  readonly sender: string;
  readonly receiver: string;
  readonly nonce: Uint8Array;
  /** Ciphertext followed by the 16-byte GCM tag. */
  readonly ciphertext: Uint8Array;
}

/** Stage 1, client to server: one sealed share pair per neighbour. */
export interface ShareKeysResponse {
  readonly stage: 'share-keys';
  readonly roundId: string;
  readonly clientId: string;
  readonly encryptedShares: readonly EncryptedShare[];
}

/** Stage 2, server to one client: the sealed shares its neighbours addressed to it. */
export interface CollectMaskedRequest {
  readonly stage: 'collect-masked';
  readonly roundId: string;
  readonly clientId: string;
  readonly encryptedShares: readonly EncryptedShare[];
}

/**
 * Stage 2, client to server: the masked, fixed-point encoded update. In a sharded deployment the
 * vector goes to the shard workers and the coordinator records only a receipt without it.
 */
export interface MaskedInput {
  readonly stage: 'collect-masked';
  readonly roundId: string;
  readonly clientId: string;
  readonly maskedVector?: Uint32Array;
}

/** Stage 3, server to each survivor: who sent a masked input and who dropped after sharing. */
export interface UnmaskRequest {
  readonly stage: 'unmask';
  readonly roundId: string;
  readonly clientId: string;
  /** Clients whose masked input is in the sum; their self-mask seeds are reconstructed. */
  readonly survivors: readonly string[];
  /** Clients that shared keys but sent no masked input; their masking keys are reconstructed. */
  readonly dropped: readonly string[];
}

/** A Shamir share of the secret belonging to `owner`. */
export interface OwnedShare {
  readonly owner: string;
  readonly share: Uint8Array;
}

/** Stage 3, client to server: seed shares of survivors, key shares of dropped clients, never both for one owner. */
export interface UnmaskResponse {
  readonly stage: 'unmask';
  readonly roundId: string;
  readonly clientId: string;
  readonly seedShares: readonly OwnedShare[];
  readonly keyShares: readonly OwnedShare[];
}

/** A mask the masked sum contains: sign * PRG(seed). Unmasking subtracts it. */
export interface MaskCorrection {
  readonly seed: Uint8Array;
  readonly sign: 1 | -1;
}

/**
 * What the coordinator hands to the shard workers once a round is unmasked: the masks to remove
 * from the sum of exactly the survivors' masked inputs, and how to decode it.
 */
export interface UnmaskPlan {
  readonly roundId: string;
  readonly vectorLength: number;
  readonly survivors: readonly string[];
  readonly corrections: readonly MaskCorrection[];
  readonly encoding: FixedPointParams;
}
