import { createCipheriv, type Cipher } from 'node:crypto';
import { endianness } from 'node:os';
import { invalidArgument } from '@fedmm/core';

/** Bytes of a mask seed: one AES-256 key. */
export const MASK_SEED_BYTES = 32;

/**
 * The mask PRG: the AES-256-CTR keystream under key `seed`, counter starting at zero, read as
 * little-endian uint32 words. Word w sits in counter block floor(w / 4), so any range of the
 * stream can be produced without the words before it; that is what lets each shard worker
 * unmask only its own coordinates.
 */
const WORDS_PER_BLOCK = 4;
// Keystream is produced in slices of this many bytes so that it stays in cache while it is
// added into the target.
const SLICE_BYTES = 1 << 18;
const zeros = new Uint8Array(SLICE_BYTES + 16);
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
  let done = 0;
  while (done < length) {
    const words = Math.min(length - done, (SLICE_BYTES - skip) >> 2);
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
 * Applies several masks to `target` (target[0] holds stream word `offset`) in one pass: each
 * slice of the target stays in cache while every mask is added to it, instead of streaming the
 * whole vector through memory once per mask.
 */
export function applyMasks(target: Uint32Array, masks: readonly SignedSeed[], offset = 0): void {
  for (const m of masks) checkRange(m.seed, offset, target.length);
  if (target.length === 0 || masks.length === 0) return;
  const block = Math.floor(offset / WORDS_PER_BLOCK);
  const ciphers = masks.map((m) => createCipheriv('aes-256-ctr', m.seed, counterIv(block)));
  let skip = (offset % WORDS_PER_BLOCK) * 4;
  let done = 0;
  while (done < target.length) {
    const words = Math.min(target.length - done, (SLICE_BYTES - skip) >> 2);
    const input = zeros.subarray(0, skip + words * 4);
    for (let k = 0; k < masks.length; k++) {
      const stream = asWords(ciphers[k]!.update(input), skip, words);
      if (masks[k]!.sign === 1) addSlice(target, stream, done);
      else subtractSlice(target, stream, done);
    }
    done += words;
    skip = 0;
  }
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
