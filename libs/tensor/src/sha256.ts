import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** Content addresses are lower-case hex sha256 digests of the artifact bytes. */
export type Sha256Hex = string;

const HEX64 = /^[0-9a-f]{64}$/;

/** Whether `s` is a well-formed content address (64 lower-case hex digits). */
export function isSha256Hex(s: unknown): s is Sha256Hex {
  return typeof s === 'string' && HEX64.test(s);
}

/** sha256 of bytes (or of a string's UTF-8 bytes) as lower-case hex. */
export function sha256Hex(data: Uint8Array | string): Sha256Hex {
  return createHash('sha256').update(data).digest('hex');
}

/** Incremental sha256 for data that arrives in pieces (uploads, streamed artifacts). */
export class Sha256Accumulator {
  readonly #hash: Hash = createHash('sha256');
  #bytes = 0;
  /** Feeds the next piece. */
  update(piece: Uint8Array): this {
    this.#hash.update(piece);
    this.#bytes += piece.byteLength;
    return this;
  }
  /** Bytes fed so far. */
  get bytes(): number {
    return this.#bytes;
  }
  /** The digest of everything fed; the accumulator cannot be fed afterwards. */
  digestHex(): Sha256Hex {
    return this.#hash.digest('hex');
  }
}

/** sha256 of an async stream of byte pieces, without holding the whole. */
export async function sha256HexOfStream(source: AsyncIterable<Uint8Array>): Promise<{ sha256: Sha256Hex; bytes: number }> {
  const acc = new Sha256Accumulator();
  for await (const piece of source) acc.update(piece);
  return { sha256: acc.digestHex(), bytes: acc.bytes };
}

/** sha256 of a file, read as a stream. */
export async function sha256HexOfFile(path: string): Promise<{ sha256: Sha256Hex; bytes: number }> {
  return sha256HexOfStream(createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Uint8Array>);
}
