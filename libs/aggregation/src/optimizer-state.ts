import { dataLoss, invalidArgument } from '@fedmm/core';
import type { ServerOptimizerAlgorithm, ServerOptimizerState } from './types.js';

const MAGIC = 0x534f4d46; // "FMOS" little-endian
const VERSION = 1;
const HEADER_BYTES = 24;
const ALGORITHMS: readonly ServerOptimizerAlgorithm[] = ['fedadam', 'fedyogi', 'fedadagrad'];

/** Fresh zero moments for one shard, as Reddi et al. and Flower start them. */
export function createServerOptimizerState(algorithm: ServerOptimizerAlgorithm, shardLength: number): ServerOptimizerState {
  if (!Number.isSafeInteger(shardLength) || shardLength <= 0) {
    throw invalidArgument(`shardLength must be a positive integer, got ${shardLength}`);
  }
  return { algorithm, step: 0, m: new Float32Array(shardLength), v: new Float32Array(shardLength) };
}

/**
 * Serialises a shard's optimizer state: a 24-byte little-endian header (magic "FMOS", version,
 * algorithm, step, length) followed by m and v as float32.
 */
export function encodeServerOptimizerState(state: ServerOptimizerState): Uint8Array {
  const n = state.m.length;
  if (state.v.length !== n) throw invalidArgument(`optimizer state has m of ${n} and v of ${state.v.length} elements; they must match`);
  const bytes = new Uint8Array(HEADER_BYTES + 8 * n);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, ALGORITHMS.indexOf(state.algorithm), true);
  view.setFloat64(12, state.step, true);
  view.setUint32(20, n, true);
  const body = new Float32Array(bytes.buffer, HEADER_BYTES, 2 * n);
  body.set(state.m, 0);
  body.set(state.v, n);
  return bytes;
}

/** Reads bytes written by encodeServerOptimizerState, checking their header and size. */
export function decodeServerOptimizerState(bytes: Uint8Array): ServerOptimizerState {
  if (bytes.byteLength < HEADER_BYTES) {
    throw dataLoss(`optimizer state of ${bytes.byteLength} bytes is shorter than its ${HEADER_BYTES}-byte header; the stored blob is truncated`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw dataLoss('optimizer state has a wrong magic number; the blob is not a fedmm server optimizer state');
  const version = view.getUint32(4, true);
  if (version !== VERSION) throw dataLoss(`optimizer state has format version ${version}; this build reads version ${VERSION}`);
  const algorithm = ALGORITHMS[view.getUint32(8, true)];
  if (algorithm === undefined) throw dataLoss('optimizer state names an unknown algorithm; the blob is corrupt');
  const step = view.getFloat64(12, true);
  const n = view.getUint32(20, true);
  if (bytes.byteLength !== HEADER_BYTES + 8 * n) {
    throw dataLoss(`optimizer state declares ${n} elements (${HEADER_BYTES + 8 * n} bytes) but has ${bytes.byteLength} bytes; the blob is truncated or corrupt`);
  }
  // Copy out so the state does not pin, or depend on the alignment of, the caller's buffer.
  const body = new Float32Array(bytes.slice(HEADER_BYTES).buffer);
  return { algorithm, step, m: body.slice(0, n), v: body.slice(n) };
}
