import { FedmmError } from '@fedmm/core';
import { crc32c } from './crc32c.js';
import { Sha256Accumulator, type Sha256Hex, isSha256Hex } from './sha256.js';

/** Largest data piece of one upload or download chunk. */
export const MAX_STREAM_CHUNK_BYTES = 1024 * 1024;

/** One piece of a byte stream: data at `offset`, with its CRC-32C (the `Chunk` message of the gRPC API). */
export interface StreamChunk {
  readonly offset: number;
  readonly data: Uint8Array;
  readonly crc32c: number;
}

/** Splits bytes into stream chunks of at most `chunkBytes`, starting at byte `from` (to resume). */
export function* streamChunks(bytes: Uint8Array, from = 0, chunkBytes = MAX_STREAM_CHUNK_BYTES): Generator<StreamChunk> {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_STREAM_CHUNK_BYTES) {
    throw new FedmmError('INVALID_ARGUMENT', `chunk size ${chunkBytes} must be in [1, ${MAX_STREAM_CHUNK_BYTES}]`);
  }
  if (!Number.isSafeInteger(from) || from < 0 || from > bytes.length) {
    throw new FedmmError('OUT_OF_RANGE', `resume offset ${from} is outside the ${bytes.length}-byte stream`);
  }
  for (let off = from; off < bytes.length; off += chunkBytes) {
    const data = bytes.subarray(off, Math.min(off + chunkBytes, bytes.length));
    yield { offset: off, data, crc32c: crc32c(data) };
  }
}

/** What {@link StreamVerifier.accept} did with a chunk. */
export type ChunkOutcome = 'accepted' | 'duplicate';

/**
 * Checks an incoming chunked stream (an update upload) without holding it: each chunk's
 * CRC-32C, that chunks arrive in order from the resume point, that the total stays within the
 * declared size, and at the end the sha256 of the whole. A chunk wholly below the current
 * offset is a resend after a lost acknowledgement and is reported as a duplicate.
 */
export class StreamVerifier {
  readonly size: number;
  readonly sha256: Sha256Hex;
  readonly #hash = new Sha256Accumulator();
  #received = 0;
  #finished = false;

  constructor(expected: { size: number; sha256: string }) {
    if (!Number.isSafeInteger(expected.size) || expected.size < 0) throw new FedmmError('INVALID_ARGUMENT', `declared size ${expected.size} is not a non-negative integer`);
    if (!isSha256Hex(expected.sha256)) throw new FedmmError('INVALID_ARGUMENT', 'declared sha256 must be 64 lower-case hex digits');
    this.size = expected.size;
    this.sha256 = expected.sha256;
  }

  /** Bytes verified and accepted so far: the offset the sender resumes from. */
  get bytesReceived(): number {
    return this.#received;
  }

  /** Whether every declared byte has arrived. */
  get complete(): boolean {
    return this.#received === this.size;
  }

  /** Verifies the next chunk; throws DATA_LOSS on a CRC mismatch and OUT_OF_RANGE on a gap or overrun. */
  accept(chunk: StreamChunk): ChunkOutcome {
    if (this.#finished) throw new FedmmError('FAILED_PRECONDITION', 'the stream is already finished');
    const { offset, data } = chunk;
    if (!(data instanceof Uint8Array)) throw new FedmmError('INVALID_ARGUMENT', 'chunk data is not bytes');
    if (!Number.isSafeInteger(offset) || offset < 0) throw new FedmmError('INVALID_ARGUMENT', `chunk offset ${String(offset)} is not a non-negative integer`);
    if (data.length > MAX_STREAM_CHUNK_BYTES) throw new FedmmError('INVALID_ARGUMENT', `chunk of ${data.length} bytes exceeds ${MAX_STREAM_CHUNK_BYTES}; split it`);
    if (typeof chunk.crc32c !== 'number' || !Number.isInteger(chunk.crc32c) || chunk.crc32c < 0 || chunk.crc32c > 0xffffffff) {
      throw new FedmmError('INVALID_ARGUMENT', `chunk crc32c ${String(chunk.crc32c)} is not an unsigned 32-bit integer`);
    }
    const crc = crc32c(data);
    if (crc !== chunk.crc32c) {
      throw new FedmmError('DATA_LOSS', `chunk at offset ${offset}: CRC-32C is ${crc.toString(16).padStart(8, '0')}, sender says ${chunk.crc32c.toString(16).padStart(8, '0')}; resend from ${this.#received}`, { offset, resumeFrom: this.#received });
    }
    if (offset + data.length <= this.#received && data.length > 0) return 'duplicate';
    if (offset !== this.#received) {
      throw new FedmmError('OUT_OF_RANGE', `chunk at offset ${offset} does not continue the stream; resume from ${this.#received}`, { offset, resumeFrom: this.#received });
    }
    if (offset + data.length > this.size) {
      throw new FedmmError('OUT_OF_RANGE', `chunk [${offset}, ${offset + data.length}) runs past the declared size ${this.size}`, { offset });
    }
    this.#hash.update(data);
    this.#received += data.length;
    return 'accepted';
  }

  /** Checks that the whole arrived and its sha256 matches the declared one (DATA_LOSS when not). */
  finish(): Sha256Hex {
    if (this.#finished) throw new FedmmError('FAILED_PRECONDITION', 'the stream is already finished');
    if (!this.complete) throw new FedmmError('FAILED_PRECONDITION', `only ${this.#received} of ${this.size} bytes arrived; send the rest from offset ${this.#received}`, { resumeFrom: this.#received });
    this.#finished = true;
    const got = this.#hash.digestHex();
    if (got !== this.sha256) {
      throw new FedmmError('DATA_LOSS', `the stream's sha256 is ${got}, the sender declared ${this.sha256}; discard it and upload again`);
    }
    return got;
  }
}
