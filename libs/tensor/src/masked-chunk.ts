import { FedmmError } from '@fedmm/core';
import { CHUNK_HEADERS, decodeUpdateChunk, encodeUpdateChunk, type ChunkHeadersInput, type DecodedUpdateChunk, type EncodedChunk, type UpdateChunk } from './chunk.js';

// A chunk of a secure-aggregation round carries masked words: uniform uint32 values mod 2^32 that
// only a sum over the survivors, with the masks removed, turns into numbers. It is an update chunk
// with dtype U32 and header fedmm-masked: 1. A reader of float updates rejects U32 as an unknown
// dtype, so masked words can never be mistaken for parameters.

/** Header that marks a chunk of masked words. */
export const MASKED_HEADER = 'fedmm-masked';
/** The dtype header value of a masked chunk. */
export const MASKED_DTYPE = 'U32';

/** One piece of one client's masked vector for one shard. */
export type MaskedChunk = Omit<UpdateChunk, 'dtype' | 'values' | 'scale'> & { readonly words: Uint32Array };

/** A decoded masked chunk. */
export type DecodedMaskedChunk = Omit<DecodedUpdateChunk, 'dtype' | 'values' | 'scale'> & { readonly words: Uint32Array };

/** Whether a record on fedmm.updates is a chunk of masked words. */
export function isMaskedChunk(headers: ChunkHeadersInput): boolean {
  const v = headers[MASKED_HEADER];
  return v === '1' || (v instanceof Uint8Array && v.length === 1 && v[0] === 0x31);
}

/** Encodes masked words as a Kafka record (same key, headers and CRC-32C as an update chunk). */
export function encodeMaskedChunk(c: MaskedChunk): EncodedChunk {
  const { words, ...rest } = c;
  // The words travel as their little-endian bytes; the F32 view only reuses the codec's checks, no float is read.
  const e = encodeUpdateChunk({ ...rest, dtype: 'F32', values: new Float32Array(words.buffer, words.byteOffset, words.length) });
  return Object.freeze({ key: e.key, value: e.value, headers: Object.freeze({ ...e.headers, [CHUNK_HEADERS.dtype]: MASKED_DTYPE, [MASKED_HEADER]: '1' }) });
}

/** Decodes and validates a masked chunk (headers, length, CRC-32C); the words are a view or an aligned copy. */
export function decodeMaskedChunk(headers: ChunkHeadersInput, value: Uint8Array): DecodedMaskedChunk {
  if (!isMaskedChunk(headers)) throw new FedmmError('INVALID_ARGUMENT', `invalid masked chunk: header ${MASKED_HEADER} is not 1`);
  const dtype = headers[CHUNK_HEADERS.dtype];
  const text = dtype instanceof Uint8Array ? Buffer.from(dtype).toString('utf8') : dtype;
  if (text !== MASKED_DTYPE) throw new FedmmError('INVALID_ARGUMENT', `invalid masked chunk: dtype ${JSON.stringify(text)} is not ${MASKED_DTYPE}`);
  const c = decodeUpdateChunk({ ...headers, [CHUNK_HEADERS.dtype]: 'F32' }, value, { requireFinite: false });
  return Object.freeze({
    task: c.task, round: c.round, client: c.client, shard: c.shard, seq: c.seq, seqCount: c.seqCount, layoutFingerprint: c.layoutFingerprint,
    elementOffset: c.elementOffset, numExamples: c.numExamples, count: c.count, crc32c: c.crc32c, zeroCopy: c.zeroCopy,
    ...(c.updateSha256 !== undefined ? { updateSha256: c.updateSha256 } : {}),
    words: new Uint32Array(c.values.buffer, c.values.byteOffset, c.values.length),
  });
}
