export { SecAggClient, type ClientStage, type SecAggClientOptions } from './client.js';
export { SecAggServer, type SecAggResult, type SecAggServerOptions, type ServerStage } from './server.js';
export { MaskedSumAccumulator, unmaskAndDecodeShard, unmaskShard, type UnmaskShardInput } from './unmask.js';
export { UnmaskPool, type UnmaskPoolOptions } from './unmask-pool.js';
export {
  compileRoundConfig,
  effectiveShares,
  encodingOf,
  PROTOCOL_VERSION,
  ROUND_SEED_BYTES,
  roundContext,
  type SecAggConfig,
  type SecAggConfigInput,
} from './config.js';
export type {
  CollectMaskedRequest,
  EncryptedShare,
  MaskCorrection,
  MaskedInput,
  OwnedShare,
  PublicKeyEntry,
  SetupRequest,
  SetupResponse,
  ShareKeysRequest,
  ShareKeysResponse,
  UnmaskPlan,
  UnmaskRequest,
  UnmaskResponse,
} from './messages.js';
export {
  decodeSum,
  encode,
  fixedPointLevels,
  fixedPointScale,
  quantizationErrorBound,
  type FixedPointParams,
} from './fixed-point.js';
export { applyMask, applyMasks, encodeMasked, MASK_SEED_BYTES, maskRange, type SignedSeed } from './prg.js';
export { addInto, subtractFrom } from './ring.js';
export { neighbourGraph } from './neighbours.js';
export { seededRandom, systemRandom, type RandomSource } from './random.js';
export {
  decodeSecAggMessage,
  encodeSecAggMessage,
  relayInboxParts,
  relayKeyParts,
  relayRoundParts,
  relayStageOf,
  SECAGG_SERVER_PARTY,
  SECAGG_STAGES,
  type RelayEntry,
} from './wire.js';
