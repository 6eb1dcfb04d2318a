import { createCipheriv, type Cipher } from 'node:crypto';
import { endianness } from 'node:os';
import { invalidArgument } from '@fedmm/core';
import { encodeBlocks, encodingConstants, type FixedPointParams } from './fixed-point.js';
import type { RandomSource } from './random.js';
import { BLOCK_WORDS, ringKernels } from './ring-kernels.js';

/** Bytes of a mask seed: one AES-256 key. */
export const MASK_SEED_BYTES = 32;

/**
 * The mask PRG: the AES-256-CTR keystream under key `seed`, counter starting at zero, read as
 * little-endian uint32 words. Word w sits in counter block floor(w / 4), so any range of the
 * stream can be produced without the words before it; that is what lets each shard worker
 * unmask only its own coordinates.
 */
const WORDS_PER_BLOCK = 4;
// Keystream is produced in slices of this many words so that it stays in cache while it is
// added into the target (and fits the kernels' staging block).
const SLICE_WORDS = BLOCK_WORDS;
// A slice may start mid AES block: up to 12 bytes of it are skipped.
const zeros = new Uint8Array(SLICE_WORDS * 4 + 16);
const littleEndian = endianness() === 'LE';

function counterIv(block: number): Buffer {
  const iv = Buffer.alloc(16);
  // Offsets are below 2^53 words, so the block index fits in the low 64 bits of the counter.
  iv.writeBigUInt64BE(BigInt(block), 8);
  return iv;
}

function checkRange(seed: Uint8Array, offset: number, length: number): void {
  if (seed.length !== MASK_SEED_BYTES) {
    throw invalidArgument(`a mask seed has ${MASK_SEED_BYTES} bytes, got ${seed.length}`);
  }
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw invalidArgument(
      `mask range needs a non-negative integer offset and length, got offset ${offset}, length ${length}`,
    );
  }
}

function asWords(bytes: Buffer, skipBytes: number, words: number): Uint32Array {
  const start = bytes.byteOffset + skipBytes;
  if (littleEndian && start % 4 === 0) return new Uint32Array(bytes.buffer, start, words);
  const out = new Uint32Array(words);
  for (let i = 0; i < words; i++) out[i] = bytes.readUInt32LE(skipBytes + i * 4);
  return out;
}

/** Calls `visit` with consecutive slices of the stream words [offset, offset + length). */
function forEachSlice(
  seed: Uint8Array,
  offset: number,
  length: number,
  visit: (words: Uint32Array, at: number) => void,
): void {
  checkRange(seed, offset, length);
  if (length === 0) return;
  const cipher: Cipher = createCipheriv('aes-256-ctr', seed, counterIv(Math.floor(offset / WORDS_PER_BLOCK)));
  let skip = (offset % WORDS_PER_BLOCK) * 4;
  for (let done = 0; done < length; ) {
    const words = Math.min(length - done, SLICE_WORDS);
    const bytes = cipher.update(zeros.subarray(0, skip + words * 4));
    visit(asWords(bytes, skip, words), done);
    done += words;
    skip = 0;
  }
}

/** A mask to add (sign 1) or subtract (sign -1). */
export interface SignedSeed {
  readonly seed: Uint8Array;
  readonly sign: 1 | -1;
}

/**
 * The keystreams of several masks read in step, slice by slice, from stream word `offset` on;
 * each call of `applyNext` adds (or subtracts) the next words of every stream into a target.
 */
class MaskStreams {
  private readonly ciphers: readonly Cipher[];
  private readonly signs: readonly (1 | -1)[];
  private skip: number;

  constructor(masks: readonly SignedSeed[], offset: number) {
    const block = counterIv(Math.floor(offset / WORDS_PER_BLOCK));
    this.ciphers = masks.map((m) => createCipheriv('aes-256-ctr', m.seed, block));
    this.signs = masks.map((m) => m.sign);
    this.skip = (offset % WORDS_PER_BLOCK) * 4;
  }

  /** Applies the next `words` (at most SLICE_WORDS) words of every stream to target[at, at + words). */
  applyNext(target: Uint32Array, at: number, words: number): void {
    const skip = this.skip;
    this.skip = 0;
    const input = zeros.subarray(0, skip + words * 4);
    const kernels = ringKernels();
    if (kernels === undefined) {
      for (let k = 0; k < this.ciphers.length; k++) {
        const stream = asWords(this.ciphers[k]!.update(input), skip, words);
        if (this.signs[k] === 1) addSlice(target, stream, at);
        else subtractSlice(target, stream, at);
      }
      return;
    }
    // A block the encoder left in the kernels' target is already in place.
    const staged = target.buffer === kernels.target.buffer && target.byteOffset + 4 * at === kernels.target.byteOffset;
    if (!staged) kernels.target.set(target.subarray(at, at + words));
    for (let k = 0; k < this.ciphers.length; k++) {
      const bytes = this.ciphers[k]!.update(input);
      kernels.stream.set(skip === 0 ? bytes : bytes.subarray(skip));
      if (this.signs[k] === 1) kernels.add(words);
      else kernels.subtract(words);
    }
    if (!staged) target.set(kernels.target.subarray(0, words), at);
  }
}

/**
 * Applies several masks to `target` (target[0] holds stream word `offset`) in one pass: each
 * slice of the target stays in cache while every mask is added to it, instead of streaming the
 * whole vector through memory once per mask.
 */
export function applyMasks(target: Uint32Array, masks: readonly SignedSeed[], offset = 0): void {
  for (const m of masks) checkRange(m.seed, offset, target.length);
  if (target.length === 0 || masks.length === 0) return;
  const streams = new MaskStreams(masks, offset);
  for (let done = 0; done < target.length; done += SLICE_WORDS) {
    streams.applyNext(target, done, Math.min(SLICE_WORDS, target.length - done));
  }
}

/**
 * The masked input of a client in one pass over the update: the fixed-point encoding of
 * `values` (drawing rounding coins from `random`) plus every mask, block by block, so each
 * encoded block is masked while it is still in cache.
 */
export function encodeMasked(
  values: Float32Array,
  params: FixedPointParams,
  masks: readonly SignedSeed[],
  random: RandomSource,
): Uint32Array {
  for (const m of masks) checkRange(m.seed, 0, values.length);
  const out = new Uint32Array(values.length);
  const streams = new MaskStreams(masks, 0);
  encodeBlocks(values, encodingConstants(params), random, (block, at) => {
    streams.applyNext(block, 0, block.length);
    out.set(block, at);
  });
  return out;
}

function addSlice(target: Uint32Array, words: Uint32Array, at: number): void {
  const n = words.length;
  for (let i = 0; i < n; i++) target[at + i] = target[at + i]! + words[i]!;
}

function subtractSlice(target: Uint32Array, words: Uint32Array, at: number): void {
  const n = words.length;
  for (let i = 0; i < n; i++) target[at + i] = target[at + i]! - words[i]!;
}

/** Words [offset, offset + length) of the mask stream of `seed`. */
export function maskRange(seed: Uint8Array, offset: number, length: number): Uint32Array {
  const out = new Uint32Array(length);
  forEachSlice(seed, offset, length, (words, at) => out.set(words, at));
  return out;
}

/**
 * Adds (sign 1) or subtracts (sign -1) the mask stream of `seed` into `target` mod 2^32, where
 * target[0] holds stream word `offset`.
 */
export function applyMask(target: Uint32Array, seed: Uint8Array, sign: 1 | -1, offset = 0): void {
  applyMasks(target, [{ seed, sign }], offset);
}
