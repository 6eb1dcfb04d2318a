import { FedmmError } from '@fedmm/core';
import { type ParamDType, PARAM_DTYPES, bytesOf, bytesPerElement, checkScale, isParamDType } from './dtype.js';
import { crc32c } from './crc32c.js';
import { type TensorLayout, DEFAULT_SHARD_ELEMENTS, MAX_CHUNK_VALUE_BYTES, checkLayoutFingerprint, shardKey } from './flat.js';
import { isSha256Hex } from './sha256.js';

/** Wire version of the update chunk format, in header `fedmm-v`. */
export const CHUNK_WIRE_VERSION = '1';

/** Header names of an update chunk on `fedmm.updates` (see docs/TENSORS.md). */
export const CHUNK_HEADERS = Object.freeze({
  version: 'fedmm-v',
  task: 'fedmm-task',
  round: 'fedmm-round',
  client: 'fedmm-client',
  shard: 'fedmm-shard',
  seq: 'fedmm-seq',
  seqCount: 'fedmm-seq-count',
  layout: 'fedmm-layout',
  dtype: 'fedmm-dtype',
  scale: 'fedmm-scale',
  elementOffset: 'fedmm-offset',
  count: 'fedmm-count',
  numExamples: 'fedmm-examples',
  update: 'fedmm-update',
  crc32c: 'fedmm-crc32c',
});

/** Values of one chunk: F32 as Float32Array, F16/BF16 as bit patterns in a Uint16Array, I8 as Int8Array (with `scale`). */
export type ChunkValues = Float32Array | Uint16Array | Int8Array;

/** One piece of one client's update for one shard. */
export interface UpdateChunk {
  readonly task: string;
  readonly round: number;
  readonly client: string;
  readonly shard: number;
  /** Position of this chunk among the client's chunks of this shard, from 0. */
  readonly seq: number;
  /** How many chunks the client sends for this shard (so a worker knows when it has all). */
  readonly seqCount: number;
  readonly layoutFingerprint: string;
  readonly dtype: ParamDType;
  /** Flattened index of the first value. */
  readonly elementOffset: number;
  readonly values: ChunkValues;
  /** Only for I8: value = int8 * scale. */
  readonly scale?: number;
  /** Examples behind the update (the weight of FedAvg). */
  readonly numExamples: number;
  /** sha256 of the whole verified upload the chunk came from. */
  readonly updateSha256?: string;
}

/** A Kafka record: key, string headers, raw little-endian values. */
export interface EncodedChunk {
  readonly key: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly value: Uint8Array;
}

/** A decoded chunk; `zeroCopy` says whether `values` is a view over the record's bytes or an aligned copy. */
export interface DecodedUpdateChunk extends UpdateChunk {
  readonly count: number;
  readonly crc32c: number;
  readonly zeroCopy: boolean;
}

/** Header values as Kafka clients hand them over (kafkajs: Buffer, string, or an array of those). */
export type ChunkHeadersInput = Readonly<Record<string, string | Uint8Array | readonly (string | Uint8Array)[] | undefined>>;

/** Checks a consumer can apply to a chunk. */
export interface DecodeChunkOptions {
  /** Reject NaN and infinities (F32, F16, BF16). */
  readonly requireFinite?: boolean;
  /** The round's layout: the fingerprint must match and the values must lie inside the shard. */
  readonly layout?: TensorLayout;
  /** Shard size of the round (default DEFAULT_SHARD_ELEMENTS); used with `layout`. */
  readonly shardElements?: number;
}

const ID = /^[\x21-\x7e]{1,256}$/;
const UINT = /^(0|[1-9][0-9]{0,15})$/;
const HEX8 = /^[0-9a-f]{8}$/;
const FLOAT = /^[+]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function bad(message: string, details: Record<string, unknown> = {}): FedmmError {
  return new FedmmError('INVALID_ARGUMENT', `invalid update chunk: ${message}`, details);
}

function checkId(what: string, v: unknown): string {
  if (typeof v !== 'string' || !ID.test(v)) throw bad(`${what} ${JSON.stringify(v)} must be 1-256 printable ASCII characters without spaces`);
  return v;
}

function checkUint(what: string, v: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) throw bad(`${what} ${String(v)} must be an integer in [0, ${max}]`);
  return v;
}

const VALUE_TYPES: Readonly<Record<ParamDType, { new (b: ArrayBufferLike, o: number, n: number): ChunkValues; name: string }>> = {
  F32: Float32Array, F16: Uint16Array, BF16: Uint16Array, I8: Int8Array,
};

/** Encodes a chunk into a Kafka record: key `round/shard`, headers with metadata and CRC-32C, value = the values' little-endian bytes. */
export function encodeUpdateChunk(c: UpdateChunk): EncodedChunk {
  checkId('task', c.task);
  checkId('client', c.client);
  checkUint('round', c.round, 0xffffffff);
  checkUint('shard', c.shard, 0xffffffff);
  checkUint('seqCount', c.seqCount);
  if (checkUint('seq', c.seq) >= c.seqCount) throw bad(`seq ${c.seq} must be below seqCount ${c.seqCount}`);
  if (c.seqCount === 0) throw bad('seqCount must be at least 1');
  checkUint('elementOffset', c.elementOffset);
  checkUint('numExamples', c.numExamples);
  if (!isSha256Hex(c.layoutFingerprint)) throw bad('layoutFingerprint must be 64 lower-case hex digits');
  if (!isParamDType(c.dtype)) throw bad(`dtype ${JSON.stringify(c.dtype)} is not one of ${PARAM_DTYPES.join(', ')}`);
  if (!(c.values instanceof VALUE_TYPES[c.dtype])) throw bad(`${c.dtype} values must be a ${VALUE_TYPES[c.dtype].name}`);
  if (c.dtype === 'I8') {
    if (c.scale === undefined) throw bad('I8 values need a scale');
    checkScale(c.scale);
  } else if (c.scale !== undefined) {
    throw bad(`only I8 chunks carry a scale, this one is ${c.dtype}`);
  }
  if (c.updateSha256 !== undefined && !isSha256Hex(c.updateSha256)) throw bad('updateSha256 must be 64 lower-case hex digits');
  const value = bytesOf(c.values);
  if (value.length > MAX_CHUNK_VALUE_BYTES) {
    throw new FedmmError('RESOURCE_EXHAUSTED', `update chunk of ${value.length} bytes exceeds ${MAX_CHUNK_VALUE_BYTES}; use smaller shards or more chunks`);
  }
  if (!Number.isSafeInteger(c.elementOffset + c.values.length)) throw bad('elementOffset + count exceeds 2^53');
  const h = CHUNK_HEADERS;
  const headers: Record<string, string> = {
    [h.version]: CHUNK_WIRE_VERSION,
    [h.task]: c.task,
    [h.round]: String(c.round),
    [h.client]: c.client,
    [h.shard]: String(c.shard),
    [h.seq]: String(c.seq),
    [h.seqCount]: String(c.seqCount),
    [h.layout]: c.layoutFingerprint,
    [h.dtype]: c.dtype,
    [h.elementOffset]: String(c.elementOffset),
    [h.count]: String(c.values.length),
    [h.numExamples]: String(c.numExamples),
    [h.crc32c]: crc32c(value).toString(16).padStart(8, '0'),
  };
  if (c.scale !== undefined) headers[h.scale] = String(c.scale);
  if (c.updateSha256 !== undefined) headers[h.update] = c.updateSha256;
  return Object.freeze({ key: shardKey(c.round, c.shard), headers: Object.freeze(headers), value });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function header(headers: ChunkHeadersInput, name: string, required: true): string;
function header(headers: ChunkHeadersInput, name: string, required: false): string | undefined;
function header(headers: ChunkHeadersInput, name: string, required: boolean): string | undefined {
  const v = Object.prototype.hasOwnProperty.call(headers, name) ? headers[name] : undefined;
  if (v === undefined) {
    if (required) throw bad(`header ${name} is missing`, { header: name });
    return undefined;
  }
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) {
    if (v.length > 1024) throw bad(`header ${name} is ${v.length} bytes long`, { header: name });
    try {
      return utf8.decode(v);
    } catch {
      throw bad(`header ${name} is not UTF-8`, { header: name });
    }
  }
  throw bad(`header ${name} is repeated or not a string`, { header: name });
}

function uintHeader(headers: ChunkHeadersInput, name: string, max = Number.MAX_SAFE_INTEGER): number {
  const s = header(headers, name, true);
  if (!UINT.test(s)) throw bad(`header ${name} ${JSON.stringify(s.slice(0, 40))} is not a decimal integer`, { header: name });
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n > max) throw bad(`header ${name} ${s} is out of range [0, ${max}]`, { header: name });
  return n;
}

function isFiniteValues(dtype: ParamDType, v: ChunkValues): number {
  if (dtype === 'F32') {
    const f = v as Float32Array;
    for (let i = 0; i < f.length; i++) if (!Number.isFinite(f[i]!)) return i;
  } else if (dtype === 'F16' || dtype === 'BF16') {
    const mask = dtype === 'F16' ? 0x7c00 : 0x7f80;
    const u = v as Uint16Array;
    for (let i = 0; i < u.length; i++) if ((u[i]! & mask) === mask) return i;
  }
  return -1;
}

/**
 * Decodes and validates a chunk from its Kafka headers and value: every header well-formed, the
 * value length = count x dtype size, the CRC-32C right (DATA_LOSS when not), and optionally the
 * values finite and inside the shard of the round's layout. Values are a view over `value` when
 * it is aligned, else an aligned copy. Malformed input only ever raises FedmmError.
 */
export function decodeUpdateChunk(headers: ChunkHeadersInput, value: Uint8Array, options: DecodeChunkOptions = {}): DecodedUpdateChunk {
  if (typeof headers !== 'object' || headers === null) throw bad('headers are missing');
  if (!(value instanceof Uint8Array)) throw bad('value is not bytes');
  const h = CHUNK_HEADERS;
  const version = header(headers, h.version, true);
  if (version !== CHUNK_WIRE_VERSION) throw bad(`wire version ${JSON.stringify(version.slice(0, 16))} is not supported (this reader speaks ${CHUNK_WIRE_VERSION}); upgrade the consumer`);
  const task = checkId('task', header(headers, h.task, true));
  const client = checkId('client', header(headers, h.client, true));
  const round = uintHeader(headers, h.round, 0xffffffff);
  const shard = uintHeader(headers, h.shard, 0xffffffff);
  const seq = uintHeader(headers, h.seq);
  const seqCount = uintHeader(headers, h.seqCount);
  if (seq >= seqCount) throw bad(`seq ${seq} is not below seq-count ${seqCount}`);
  const layoutFingerprint = header(headers, h.layout, true);
  if (!isSha256Hex(layoutFingerprint)) throw bad(`header ${h.layout} is not 64 lower-case hex digits`);
  const dtype = header(headers, h.dtype, true);
  if (!isParamDType(dtype)) throw bad(`dtype ${JSON.stringify(dtype.slice(0, 16))} is not one of ${PARAM_DTYPES.join(', ')}`);
  const elementOffset = uintHeader(headers, h.elementOffset);
  const count = uintHeader(headers, h.count);
  const numExamples = uintHeader(headers, h.numExamples);
  const crcText = header(headers, h.crc32c, true);
  if (!HEX8.test(crcText)) throw bad(`header ${h.crc32c} is not 8 lower-case hex digits`);
  const scaleText = header(headers, h.scale, false);
  let scale: number | undefined;
  if (dtype === 'I8') {
    if (scaleText === undefined) throw bad(`an I8 chunk needs header ${h.scale}`);
    if (!FLOAT.test(scaleText)) throw bad(`header ${h.scale} ${JSON.stringify(scaleText.slice(0, 40))} is not a decimal number`);
    scale = Number(scaleText);
    if (!Number.isFinite(scale) || scale <= 0) throw bad(`scale ${scaleText} is not positive and finite`);
  } else if (scaleText !== undefined) {
    throw bad(`a ${dtype} chunk must not carry ${h.scale}`);
  }
  const updateSha256 = header(headers, h.update, false);
  if (updateSha256 !== undefined && !isSha256Hex(updateSha256)) throw bad(`header ${h.update} is not 64 lower-case hex digits`);

  const size = bytesPerElement(dtype);
  if (value.length > MAX_CHUNK_VALUE_BYTES) throw bad(`value of ${value.length} bytes exceeds ${MAX_CHUNK_VALUE_BYTES}`);
  if (value.length !== count * size) throw bad(`value has ${value.length} bytes but ${count} ${dtype} values need ${count * size}`);
  if (!Number.isSafeInteger(elementOffset + count)) throw bad('offset + count exceeds 2^53');
  const crc = crc32c(value);
  if (crc !== parseInt(crcText, 16)) {
    throw new FedmmError('DATA_LOSS', `update chunk ${task}/${round}/${shard}/${client}#${seq}: CRC-32C is ${crc.toString(16).padStart(8, '0')}, header says ${crcText}; the bytes were corrupted, resend the chunk`, { task, round, shard, client, seq });
  }

  if (options.layout !== undefined) {
    checkLayoutFingerprint(options.layout, layoutFingerprint);
    const se = options.shardElements ?? DEFAULT_SHARD_ELEMENTS;
    const start = shard * se;
    const end = Math.min(start + se, options.layout.totalElements);
    if (elementOffset < start || elementOffset + count > end) {
      throw bad(`values [${elementOffset}, ${elementOffset + count}) are outside shard ${shard} = [${start}, ${end})`, { shard });
    }
  }

  const aligned = value.byteOffset % size === 0;
  // Uint8Array.prototype.slice copies even when value is a Node Buffer (whose own slice is a view).
  const src = aligned ? value : Uint8Array.prototype.slice.call(value);
  const values = new VALUE_TYPES[dtype](src.buffer, src.byteOffset, count);
  if (options.requireFinite === true) {
    const at = isFiniteValues(dtype, values);
    if (at >= 0) throw bad(`value ${at} (element ${elementOffset + at}) is not finite; the client must send finite updates`, { element: elementOffset + at });
  }
  const out: DecodedUpdateChunk = {
    task, round, client, shard, seq, seqCount, layoutFingerprint, dtype, elementOffset, values, numExamples,
    count, crc32c: crc, zeroCopy: aligned,
    ...(scale !== undefined ? { scale } : {}),
    ...(updateSha256 !== undefined ? { updateSha256 } : {}),
  };
  return Object.freeze(out);
}
