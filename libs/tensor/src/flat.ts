import { FedmmError } from '@fedmm/core';
import {
  type ParamDType, type Tensor, PARAM_DTYPES, bytesPerElement, decodeBf16, decodeF16, dequantizeInt8, elementCount,
  isParamDType,
} from './dtype.js';
import { compareUtf8 } from './order.js';
import { type Sha256Hex, sha256Hex } from './sha256.js';

/**
 * Largest value section of one update chunk: 1 MiB less 64 KiB. A Kafka record must fit the
 * broker's `max.message.bytes` (1,048,588 by default) with its key, headers and batch overhead;
 * fedmm's headers take well under 1 KiB, so 64 KiB is a wide margin (see docs/TENSORS.md).
 */
export const MAX_CHUNK_VALUE_BYTES = 1024 * 1024 - 64 * 1024;

/** Default shard size: as many F32 elements as fit one chunk value (245,760 = 960 KiB of F32). */
export const DEFAULT_SHARD_ELEMENTS = MAX_CHUNK_VALUE_BYTES / 4;

/** A tensor of the flattened parameter space, as the client declares it. */
export interface LayoutTensor {
  readonly name: string;
  readonly dtype: ParamDType;
  readonly shape: readonly number[];
  /** "image", "text", "sensor", or absent for shared tensors. */
  readonly modality?: string;
}

/** A tensor's place in the flattened space: elements [offset, offset + length), payload bytes [byteOffset, byteOffset + byteLength). */
export interface LayoutEntry extends LayoutTensor {
  readonly index: number;
  readonly offset: number;
  readonly length: number;
  readonly byteOffset: number;
  readonly byteLength: number;
}

/**
 * The flattened parameter space of an update or a model version: tensors sorted by name
 * (UTF-8 byte order), concatenated row-major. An update payload is the tensors' little-endian
 * bytes in this order.
 */
export interface TensorLayout {
  readonly entries: readonly LayoutEntry[];
  readonly totalElements: number;
  readonly totalBytes: number;
  /** sha256 of {@link canonicalLayoutJson}: both sides must agree before bytes flow. */
  readonly fingerprint: Sha256Hex;
}

const MODALITY = /^[a-z][a-z0-9_-]{0,31}$/;

function sortedChecked(tensors: Iterable<LayoutTensor>): LayoutTensor[] {
  const list = [...tensors];
  const seen = new Set<string>();
  for (const t of list) {
    if (typeof t.name !== 'string' || t.name.length === 0) throw new FedmmError('INVALID_ARGUMENT', 'layout: a tensor has an empty name; name every tensor');
    if (seen.has(t.name)) throw new FedmmError('INVALID_ARGUMENT', `layout: tensor "${t.name}" appears twice; names must be unique`, { tensor: t.name });
    seen.add(t.name);
    if (!isParamDType(t.dtype)) {
      throw new FedmmError('INVALID_ARGUMENT', `layout: tensor "${t.name}" has dtype ${JSON.stringify(t.dtype)}; updates use ${PARAM_DTYPES.join(', ')}`, { tensor: t.name });
    }
    if (!Array.isArray(t.shape)) throw new FedmmError('INVALID_ARGUMENT', `layout: tensor "${t.name}" has no shape`, { tensor: t.name });
    elementCount(t.shape);
    if (t.modality !== undefined && t.modality !== '' && !MODALITY.test(t.modality)) {
      throw new FedmmError('INVALID_ARGUMENT', `layout: tensor "${t.name}" has modality ${JSON.stringify(t.modality)}; use a short lower-case word such as "image"`, { tensor: t.name });
    }
  }
  return list.sort((a, b) => compareUtf8(a.name, b.name));
}

/** The canonical JSON the fingerprint is taken over: version, then each tensor's name, dtype, shape (and modality when set), sorted by name. */
export function canonicalLayoutJson(tensors: Iterable<LayoutTensor>): string {
  const items = sortedChecked(tensors).map((t) => {
    const m = t.modality !== undefined && t.modality !== '' ? `,"modality":${JSON.stringify(t.modality)}` : '';
    return `{"name":${JSON.stringify(t.name)},"dtype":"${t.dtype}","shape":[${t.shape.join(',')}]${m}}`;
  });
  return `{"fedmm.layout":1,"tensors":[${items.join(',')}]}`;
}

/** Builds the layout: stable order, offsets in elements and payload bytes, fingerprint. */
export function createLayout(tensors: Iterable<LayoutTensor>): TensorLayout {
  const list = sortedChecked(tensors);
  const entries: LayoutEntry[] = [];
  let offset = 0;
  let byteOffset = 0;
  list.forEach((t, index) => {
    const length = elementCount(t.shape);
    const byteLength = length * bytesPerElement(t.dtype);
    const e: LayoutEntry = {
      name: t.name, dtype: t.dtype, shape: Object.freeze([...t.shape]),
      ...(t.modality !== undefined && t.modality !== '' ? { modality: t.modality } : {}),
      index, offset, length, byteOffset, byteLength,
    };
    entries.push(Object.freeze(e));
    offset += length;
    byteOffset += byteLength;
  });
  if (!Number.isSafeInteger(byteOffset)) throw new FedmmError('INVALID_ARGUMENT', 'layout: more than 2^53 bytes; split the model');
  return Object.freeze({
    entries: Object.freeze(entries),
    totalElements: offset,
    totalBytes: byteOffset,
    fingerprint: sha256Hex(canonicalLayoutJson(list)),
  });
}

/** The layout of a set of parameter tensors. */
export function layoutOfTensors(tensors: Iterable<readonly [string, Tensor]>, modalityOf?: (name: string) => string | undefined): TensorLayout {
  return createLayout([...tensors].map(([name, t]) => {
    const modality = modalityOf?.(name);
    return { name, dtype: t.dtype as ParamDType, shape: t.shape, ...(modality !== undefined ? { modality } : {}) };
  }));
}

/** Throws FAILED_PRECONDITION when a fingerprint does not match the layout. */
export function checkLayoutFingerprint(layout: TensorLayout, fingerprint: string): void {
  if (fingerprint !== layout.fingerprint) {
    throw new FedmmError('FAILED_PRECONDITION', `layout fingerprint ${fingerprint.slice(0, 16)}... does not match the round's layout ${layout.fingerprint.slice(0, 16)}...; fetch the round's layout and rebuild the update`, { expected: layout.fingerprint, got: fingerprint });
  }
}

/** Elements [start, end) of one tensor that fall into a shard; `flatStart` is where they begin in the flattened space. */
export interface ShardPiece {
  readonly name: string;
  readonly tensorIndex: number;
  readonly start: number;
  readonly end: number;
  readonly flatStart: number;
}

/** Shard `index` covers flattened elements [start, end). */
export interface Shard {
  readonly index: number;
  readonly start: number;
  readonly end: number;
  readonly pieces: readonly ShardPiece[];
}

function checkShardElements(shardElements: number): void {
  if (!Number.isSafeInteger(shardElements) || shardElements < 1) {
    throw new FedmmError('INVALID_ARGUMENT', `shard size ${shardElements} is not a positive integer number of elements`);
  }
  if (shardElements * 4 > MAX_CHUNK_VALUE_BYTES) {
    throw new FedmmError('INVALID_ARGUMENT', `shard size ${shardElements} elements exceeds ${MAX_CHUNK_VALUE_BYTES / 4}, the most F32 elements one Kafka chunk holds`);
  }
}

/** Number of shards of a layout (0 for an empty layout). */
export function shardCount(layout: TensorLayout, shardElements = DEFAULT_SHARD_ELEMENTS): number {
  checkShardElements(shardElements);
  return Math.ceil(layout.totalElements / shardElements);
}

/** Shard `index` of the layout, with the tensor pieces it covers. */
export function shardAt(layout: TensorLayout, index: number, shardElements = DEFAULT_SHARD_ELEMENTS): Shard {
  const count = shardCount(layout, shardElements);
  if (!Number.isSafeInteger(index) || index < 0 || index >= count) {
    throw new FedmmError('OUT_OF_RANGE', `shard ${index} does not exist; the layout has ${count} shards of ${shardElements} elements`);
  }
  const start = index * shardElements;
  const end = Math.min(start + shardElements, layout.totalElements);
  const es = layout.entries;
  // First tensor whose range ends after `start` (binary search over offsets).
  let lo = 0;
  let hi = es.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const e = es[mid]!;
    if (e.offset + e.length <= start) lo = mid + 1;
    else hi = mid;
  }
  const pieces: ShardPiece[] = [];
  for (let i = lo; i < es.length; i++) {
    const e = es[i]!;
    if (e.offset >= end) break;
    if (e.length === 0) continue;
    const s = Math.max(start, e.offset);
    const t = Math.min(end, e.offset + e.length);
    pieces.push(Object.freeze({ name: e.name, tensorIndex: i, start: s - e.offset, end: t - e.offset, flatStart: s }));
  }
  return Object.freeze({ index, start, end, pieces: Object.freeze(pieces) });
}

/** Every shard of the layout, in order. */
export function shardsOf(layout: TensorLayout, shardElements = DEFAULT_SHARD_ELEMENTS): Shard[] {
  const n = shardCount(layout, shardElements);
  const out: Shard[] = [];
  for (let i = 0; i < n; i++) out.push(shardAt(layout, i, shardElements));
  return out;
}

/** The shard that holds flattened element `element`. */
export function shardOfElement(element: number, shardElements = DEFAULT_SHARD_ELEMENTS): number {
  checkShardElements(shardElements);
  return Math.floor(element / shardElements);
}

/** Bytes [begin, end) of an update payload (tensor bytes in layout order) that hold a shard. */
export function shardByteRange(layout: TensorLayout, shard: Shard): [number, number] {
  if (shard.pieces.length === 0) return [0, 0];
  const first = shard.pieces[0]!;
  const last = shard.pieces[shard.pieces.length - 1]!;
  const fe = layout.entries[first.tensorIndex]!;
  const le = layout.entries[last.tensorIndex]!;
  return [fe.byteOffset + first.start * bytesPerElement(fe.dtype), le.byteOffset + last.end * bytesPerElement(le.dtype)];
}

/** Kafka key of a shard's chunks: `round/shard`. */
export function shardKey(round: number, shard: number): string {
  return `${round}/${shard}`;
}

/**
 * The partition of shard `shard` in round `round`: (round + shard) mod numPartitions. Every chunk
 * of a (round, shard) lands in one partition, so one worker accumulates it; consecutive shards
 * spread evenly, and the rotation per round moves the short last shard around. Producers set
 * this partition explicitly (Kafka's default key hash would not spread shards evenly).
 */
export function partitionFor(round: number, shard: number, numPartitions: number): number {
  if (!Number.isSafeInteger(numPartitions) || numPartitions < 1) throw new FedmmError('INVALID_ARGUMENT', `numPartitions ${numPartitions} is not a positive integer`);
  if (!Number.isSafeInteger(round) || round < 0 || round > 0xffffffff) throw new FedmmError('INVALID_ARGUMENT', `round ${round} is not an integer in [0, 2^32)`);
  if (!Number.isSafeInteger(shard) || shard < 0 || shard > 0xffffffff) throw new FedmmError('INVALID_ARGUMENT', `shard ${shard} is not an integer in [0, 2^32)`);
  return (round + shard) % numPartitions;
}

function readF32(dtype: ParamDType, bytes: Uint8Array, count: number, scale: number | undefined, out: Float32Array, at: number, name: string): void {
  const size = bytesPerElement(dtype);
  // Payload pieces may sit at any byte offset; copy to align when needed.
  const src = bytes.byteOffset % size === 0 ? bytes : Uint8Array.prototype.slice.call(bytes);
  const dst = out.subarray(at, at + count);
  switch (dtype) {
    case 'F32': dst.set(new Float32Array(src.buffer, src.byteOffset, count)); break;
    case 'F16': decodeF16(new Uint16Array(src.buffer, src.byteOffset, count), dst); break;
    case 'BF16': decodeBf16(new Uint16Array(src.buffer, src.byteOffset, count), dst); break;
    case 'I8':
      if (scale === undefined) throw new FedmmError('INVALID_ARGUMENT', `tensor "${name}" is I8 but no scale was given; send the scale in the update header`, { tensor: name });
      dequantizeInt8(new Int8Array(src.buffer, src.byteOffset, count), scale, dst);
      break;
  }
}

/**
 * A shard's values as Float32, gathered from an update payload (the tensors' bytes in layout
 * order, each in its own dtype). `payload` may be the whole payload or just
 * {@link shardByteRange}'s bytes (then pass `payloadOffset` = that range's begin).
 */
export function gatherShard(layout: TensorLayout, shard: Shard, payload: Uint8Array, scales?: ReadonlyMap<string, number>, payloadOffset = 0): Float32Array {
  const out = new Float32Array(shard.end - shard.start);
  for (const p of shard.pieces) {
    const e = layout.entries[p.tensorIndex]!;
    const size = bytesPerElement(e.dtype);
    const begin = e.byteOffset + p.start * size - payloadOffset;
    const end = e.byteOffset + p.end * size - payloadOffset;
    if (begin < 0 || end > payload.length) {
      throw new FedmmError('OUT_OF_RANGE', `payload bytes [${begin + payloadOffset}, ${end + payloadOffset}) of tensor "${e.name}" are not in the ${payload.length} bytes given at ${payloadOffset}`, { tensor: e.name });
    }
    readF32(e.dtype, payload.subarray(begin, end), p.end - p.start, scales?.get(e.name), out, p.flatStart - shard.start, e.name);
  }
  return out;
}

/** Writes a shard's Float32 values into per-tensor Float32 arrays (created on first use), e.g. to assemble an aggregate. */
export function scatterShard(layout: TensorLayout, shard: Shard, values: Float32Array, into: Map<string, Float32Array>): void {
  if (values.length !== shard.end - shard.start) {
    throw new FedmmError('INVALID_ARGUMENT', `shard ${shard.index} has ${shard.end - shard.start} elements, got ${values.length} values`);
  }
  for (const p of shard.pieces) {
    const e = layout.entries[p.tensorIndex]!;
    let t = into.get(e.name);
    if (t === undefined) {
      t = new Float32Array(e.length);
      into.set(e.name, t);
    } else if (t.length !== e.length) {
      throw new FedmmError('INVALID_ARGUMENT', `tensor "${e.name}" has ${e.length} elements in the layout but the target array has ${t.length}`, { tensor: e.name });
    }
    t.set(values.subarray(p.flatStart - shard.start, p.flatStart - shard.start + (p.end - p.start)), p.start);
  }
}
