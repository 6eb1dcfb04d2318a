import { invalidArgument } from '@fedmm/core';
import { digest } from './keys.js';
import type { FixedPointParams } from './fixed-point.js';

/** Bytes of the public round seed that fixes the neighbour graph. */
export const ROUND_SEED_BYTES = 32;
/** Wire version of the protocol; a client refuses any other. */
export const PROTOCOL_VERSION = 1;
// shamir-secret-sharing works over GF(256): at most 255 shares of one secret.
const MAX_SHARES = 255;

/**
 * Public configuration of one secure-aggregation round, sent to every client in stage 0 and
 * bound into every derived key. Compile it with `compileRoundConfig`.
 */
export interface SecAggConfig {
  readonly protocolVersion: number;
  readonly roundId: string;
  /** Public randomness that fixes the neighbour graph; chosen by the server per round. */
  readonly roundSeed: Uint8Array;
  /** Clients selected for the round, sorted; at most this many vectors are ever summed. */
  readonly participants: readonly string[];
  /** Coordinates of the flattened update vector. */
  readonly vectorLength: number;
  /** Each coordinate is clipped to [-clipRange, clipRange] before encoding. */
  readonly clipRange: number;
  /** Shares of each secret, one kept and one per neighbour; n or more means a complete graph. */
  readonly numShares: number;
  /** Shares needed to reconstruct a secret; more than half of a neighbourhood. */
  readonly threshold: number;
}

/** What a caller provides; `compileRoundConfig` fills defaults and validates. */
export interface SecAggConfigInput {
  readonly roundId: string;
  readonly participants: readonly string[];
  readonly vectorLength: number;
  readonly clipRange: number;
  readonly numShares: number;
  readonly threshold: number;
  readonly roundSeed: Uint8Array;
}

/** Shares actually made per secret: numShares, or n in a complete graph. */
export function effectiveShares(numShares: number, clients: number): number {
  return Math.min(numShares, clients);
}

/** Validates a round configuration and returns it frozen; every later layer trusts it. */
export function compileRoundConfig(input: SecAggConfigInput & { protocolVersion?: number }): SecAggConfig {
  const version = input.protocolVersion ?? PROTOCOL_VERSION;
  if (version !== PROTOCOL_VERSION) {
    throw invalidArgument(`secure aggregation protocol version ${version} is not supported; this library speaks ${PROTOCOL_VERSION}`);
  }
  if (typeof input.roundId !== 'string' || input.roundId.length === 0 || input.roundId.length > 256) {
    throw invalidArgument('roundId must be a non-empty string of at most 256 characters');
  }
  if (!(input.roundSeed instanceof Uint8Array) || input.roundSeed.length !== ROUND_SEED_BYTES) {
    throw invalidArgument(`roundSeed must be ${ROUND_SEED_BYTES} bytes`);
  }
  const participants = [...input.participants];
  const unique = new Set(participants);
  if (participants.some((p) => typeof p !== 'string' || p.length === 0)) {
    throw invalidArgument('participant ids must be non-empty strings');
  }
  if (unique.size !== participants.length) {
    throw invalidArgument('participant ids must be unique; remove the duplicates from the selection');
  }
  const n = participants.length;
  if (n < 2 || n > 1 << 16) {
    throw invalidArgument(`secure aggregation needs 2 to 65536 participants, got ${n}`);
  }
  participants.sort();
  if (!Number.isSafeInteger(input.vectorLength) || input.vectorLength < 1) {
    throw invalidArgument(`vectorLength must be a positive integer, got ${input.vectorLength}`);
  }
  if (!(Number.isFinite(input.clipRange) && input.clipRange > 0)) {
    throw invalidArgument(`clipRange must be a finite number > 0, got ${input.clipRange}`);
  }
  const { numShares, threshold } = input;
  if (!Number.isInteger(numShares) || numShares < 2) {
    throw invalidArgument(`numShares must be an integer >= 2, got ${numShares}`);
  }
  if (numShares < n && numShares % 2 === 0) {
    throw invalidArgument(
      `numShares ${numShares} is even: a client keeps one share and gives one to each of (numShares - 1) / 2 ` +
        `neighbours on either side, so use ${numShares + 1}, or ${n} or more for a complete graph`,
    );
  }
  const shares = effectiveShares(numShares, n);
  if (shares > MAX_SHARES) {
    throw invalidArgument(`numShares is limited to ${MAX_SHARES} (GF(256) Shamir sharing), got ${shares}`);
  }
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > shares || 2 * threshold <= shares) {
    throw invalidArgument(
      `threshold must be an integer with ${shares} / 2 < threshold <= ${shares} and threshold >= 2, got ${threshold}; ` +
        'a majority threshold keeps a server from collecting both kinds of share of one client',
    );
  }
  return Object.freeze({
    protocolVersion: version,
    roundId: input.roundId,
    roundSeed: new Uint8Array(input.roundSeed),
    participants: Object.freeze(participants),
    vectorLength: input.vectorLength,
    clipRange: input.clipRange,
    numShares,
    threshold,
  });
}

/** Fixed-point parameters implied by a round: the clip range, and at most n summands. */
export function encodingOf(config: SecAggConfig): FixedPointParams {
  return Object.freeze({ clipRange: config.clipRange, maxSummands: config.participants.length });
}

/** A digest of the whole configuration; salts every derived key, so keys never cross rounds. */
export function roundContext(config: SecAggConfig): Uint8Array {
  return digest(
    'fedmm/secagg/v1/round',
    String(config.protocolVersion),
    config.roundId,
    config.roundSeed,
    ...config.participants,
    String(config.vectorLength),
    String(config.clipRange),
    String(config.numShares),
    String(config.threshold),
  );
}
