import { createSHA256, type IHasher } from 'hash-wasm';
import { FedmmError } from '@fedmm/core';
import type { Sha256Hex } from './sha256.js';

/**
 * The exported state of a {@link ResumableSha256}: plain JSON, so it can sit in a store record.
 * `state` is hash-wasm's saved SHA-256 state (base64); it carries a fingerprint of the
 * WebAssembly build that wrote it, and a build with another SHA-256 binary refuses to load it.
 */
export interface Sha256State {
  /** Bytes hashed so far. */
  readonly bytes: number;
  readonly state: string;
}

/**
 * Incremental sha256 whose running state can be exported at any byte and continued in another
 * process (an upload taken over by another gateway). hash-wasm's WebAssembly SHA-256, about a
 * fifth of node:crypto's throughput with SHA extensions; see bench/gateway/sha256-bench.mjs.
 */
export class ResumableSha256 {
  #bytes: number;
  #done = false;

  private constructor(private readonly hasher: IHasher, bytes: number) {
    this.#bytes = bytes;
  }

  /** A hasher at byte 0. */
  static async create(): Promise<ResumableSha256> {
    return new ResumableSha256(await createSHA256(), 0);
  }

  /** A hasher continuing from an exported state; INVALID_ARGUMENT if the state is malformed or from an incompatible build. */
  static async resume(state: Sha256State): Promise<ResumableSha256> {
    if (!Number.isSafeInteger(state.bytes) || state.bytes < 0 || typeof state.state !== 'string') {
      throw new FedmmError('INVALID_ARGUMENT', 'the sha256 state is malformed (bytes must be a non-negative integer, state base64 text); start the hash over');
    }
    const hasher = await createSHA256();
    try {
      hasher.load(new Uint8Array(Buffer.from(state.state, 'base64')));
    } catch (e) {
      throw new FedmmError('INVALID_ARGUMENT', `the sha256 state cannot be loaded (${(e as Error).message}); it was written by another hash-wasm build: start the hash over`);
    }
    return new ResumableSha256(hasher, state.bytes);
  }

  /** Feeds the next piece. */
  update(piece: Uint8Array): this {
    if (this.#done) throw new FedmmError('FAILED_PRECONDITION', 'this sha256 was already finalized; create a new hasher');
    this.hasher.update(piece);
    this.#bytes += piece.byteLength;
    return this;
  }

  /** Bytes fed so far (including those before a resume). */
  get bytes(): number {
    return this.#bytes;
  }

  /** The state after every byte fed so far; resume() continues from it. */
  exportState(): Sha256State {
    if (this.#done) throw new FedmmError('FAILED_PRECONDITION', 'this sha256 was already finalized; its state is gone');
    return { bytes: this.#bytes, state: Buffer.from(this.hasher.save()).toString('base64') };
  }

  /** The digest of everything fed; the hasher cannot be fed or exported afterwards. */
  digestHex(): Sha256Hex {
    if (this.#done) throw new FedmmError('FAILED_PRECONDITION', 'this sha256 was already finalized');
    this.#done = true;
    return this.hasher.digest('hex');
  }
}
