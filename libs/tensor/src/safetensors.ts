import { FedmmError } from '@fedmm/core';
import {
  type DType, type Tensor, type TensorData, DTYPES, bytesOf, bytesPerElement, checkScale, dtypeRank,
  elementCount, isDType, isDataOf, viewOf,
} from './dtype.js';
import { findDuplicateKey } from './json-keys.js';
import { compareUtf8 } from './order.js';

/** Largest JSON header accepted, as in the reference implementation (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/** Reserved header key of the string-to-string metadata map. */
export const METADATA_KEY = '__metadata__';

/** Metadata key prefix under which an I8 tensor's scale is stored: `fedmm.scale.<tensor name>`. */
export const SCALE_METADATA_PREFIX = 'fedmm.scale.';

/** Name, dtype and shape of a tensor to write (and its scale when it is I8). */
export interface TensorDescriptor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly scale?: number;
}

/** One validated header entry; `dataOffsets` are relative to the start of the data section. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly dataOffsets: readonly [number, number];
  /** The I8 scale from `__metadata__`, when present. */
  readonly scale?: number;
}

/** A validated safetensors header. */
export interface SafetensorsHeader {
  /** Entries in data order (ascending offsets). */
  readonly entries: readonly SafetensorsEntry[];
  /** The `__metadata__` map, or null when the file has none. */
  readonly metadata: Readonly<Record<string, string>> | null;
  /** N: length of the JSON header in bytes (padding included). */
  readonly headerLength: number;
  /** Byte offset of the data section in the file: 8 + N. */
  readonly dataStart: number;
  /** Length of the data section in bytes. */
  readonly dataLength: number;
}

/** A tensor read from a safetensors buffer. */
export interface ParsedTensor extends Tensor {
  readonly name: string;
  /** True when `data` is a view over the input bytes; false when it had to be copied to align it. */
  readonly zeroCopy: boolean;
}

/** A parsed safetensors buffer. */
export interface ParsedSafetensors {
  readonly header: SafetensorsHeader;
  /** Tensors by name, in data order. */
  readonly tensors: ReadonlyMap<string, ParsedTensor>;
}

/** Tensors keyed by name: a Map, a plain object, or [name, tensor] pairs. */
export type NamedTensors = ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>> | Iterable<readonly [string, Tensor]>;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function requireLittleEndian(): void {
  if (!LITTLE_ENDIAN) {
    throw new FedmmError('FAILED_PRECONDITION', 'safetensors data is little-endian and this host is big-endian; run fedmm on a little-endian host');
  }
}

function bad(message: string, details: Record<string, unknown> = {}): FedmmError {
  return new FedmmError('INVALID_ARGUMENT', `invalid safetensors: ${message}`, details);
}

/**
 * Reads N from the first 8 bytes (u64 little-endian) and checks it against the limit and against
 * the total size when known.
 */
export function readHeaderLength(prefix: Uint8Array, totalSize?: number): number {
  if (prefix.length < 8) throw bad(`${prefix.length} bytes is shorter than the 8-byte header length; the file is truncated or not safetensors`);
  const dv = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw bad(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit; the file is corrupt or not safetensors`);
  }
  const len = Number(n);
  if (len < 2) throw bad(`header length ${len} is too short for a JSON object`);
  if (totalSize !== undefined && 8 + len > totalSize) {
    throw bad(`header length ${len} runs past the end of the ${totalSize}-byte file; the file is truncated`);
  }
  return len;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseScale(name: string, text: string): number {
  // Plain decimal or exponent notation only; Number() would also take "0x10", "", " 1 ".
  if (!/^[+]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) {
    throw bad(`tensor "${name}": scale ${JSON.stringify(text)} in ${SCALE_METADATA_PREFIX}${name} is not a decimal number`, { tensor: name });
  }
  const s = Number(text);
  if (!Number.isFinite(s) || s <= 0) throw bad(`tensor "${name}": scale ${text} is not positive and finite`, { tensor: name });
  return s;
}

/**
 * Parses and validates the JSON header bytes (without the 8-byte prefix) against a data section of
 * `dataLength` bytes: dtypes known, shapes whole, offsets contiguous from 0 without gaps or
 * overlaps, each byte length = elements x dtype size, the last offset = dataLength, no duplicate
 * names, `__metadata__` string to string, I8 scales well-formed.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, dataLength: number): SafetensorsHeader {
  let text: string;
  try {
    text = utf8.decode(headerBytes);
  } catch {
    throw bad('the JSON header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw bad('the JSON header does not start with "{"');
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (e) {
    throw bad(`the JSON header does not parse: ${(e as Error).message}`);
  }
  if (!isRecord(root)) throw bad('the JSON header is not an object');
  const dup = findDuplicateKey(text);
  if (dup !== undefined) throw bad(`the JSON header has the key "${dup}" twice`, { key: dup });

  let metadata: Record<string, string> | null = null;
  const rawMeta = root[METADATA_KEY];
  if (rawMeta !== undefined && rawMeta !== null) {
    if (!isRecord(rawMeta)) throw bad(`${METADATA_KEY} is not an object of strings`);
    metadata = {};
    for (const [k, v] of Object.entries(rawMeta)) {
      if (typeof v !== 'string') throw bad(`${METADATA_KEY} value of "${k}" is ${typeof v}, not a string`, { key: k });
      metadata[k] = v;
    }
    Object.freeze(metadata);
  }

  const entries: { name: string; dtype: DType; shape: number[]; dataOffsets: [number, number]; scale?: number }[] = [];
  for (const [name, info] of Object.entries(root)) {
    if (name === METADATA_KEY) continue;
    if (!isRecord(info)) throw bad(`tensor "${name}": entry is not an object`, { tensor: name });
    for (const k of Object.keys(info)) {
      if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets') throw bad(`tensor "${name}": unknown field "${k}"`, { tensor: name });
    }
    const { dtype, shape, data_offsets: offsets } = info;
    if (!isDType(dtype)) {
      throw bad(`tensor "${name}": dtype ${JSON.stringify(dtype)} is not one of ${DTYPES.join(', ')}`, { tensor: name });
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw bad(`tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`, { tensor: name });
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw bad(`tensor "${name}": data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`, { tensor: name });
    }
    const begin = offsets[0] as number;
    const end = offsets[1] as number;
    if (end < begin) throw bad(`tensor "${name}": data_offsets [${begin}, ${end}] end before they begin`, { tensor: name });
    let elements: number;
    try {
      elements = elementCount(shape as number[]);
    } catch {
      throw bad(`tensor "${name}": shape ${JSON.stringify(shape)} has too many elements`, { tensor: name });
    }
    const nbytes = elements * bytesPerElement(dtype);
    if (nbytes !== end - begin) {
      throw bad(`tensor "${name}": ${dtype} shape [${shape.join(', ')}] needs ${nbytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`, { tensor: name });
    }
    entries.push({ name, dtype, shape: shape as number[], dataOffsets: [begin, end] });
  }

  entries.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  for (const e of entries) {
    const [begin, end] = e.dataOffsets;
    if (begin !== cursor) {
      throw bad(begin > cursor
        ? `tensor "${e.name}": data_offsets begin at ${begin}, leaving a gap after byte ${cursor}`
        : `tensor "${e.name}": data_offsets [${begin}, ${end}] overlap the previous tensor, which ends at ${cursor}`, { tensor: e.name });
    }
    cursor = end;
  }
  if (cursor !== dataLength) {
    throw bad(cursor > dataLength
      ? `tensors need ${cursor} data bytes but the data section has ${dataLength}; the file is truncated`
      : `the data section has ${dataLength - cursor} bytes after the last tensor`, { dataLength, expected: cursor });
  }

  if (metadata !== null) {
    const byName = new Map(entries.map((e) => [e.name, e]));
    for (const [k, v] of Object.entries(metadata)) {
      if (!k.startsWith(SCALE_METADATA_PREFIX)) continue;
      const name = k.slice(SCALE_METADATA_PREFIX.length);
      const e = byName.get(name);
      if (e === undefined || e.dtype !== 'I8') throw bad(`metadata "${k}" gives a scale for "${name}", which is not an I8 tensor of this file`, { key: k });
      e.scale = parseScale(name, v);
    }
  }

  return Object.freeze({
    entries: Object.freeze(entries.map((e) => Object.freeze({ ...e, shape: Object.freeze(e.shape), dataOffsets: Object.freeze(e.dataOffsets) }))),
    metadata,
    headerLength: headerBytes.length,
    dataStart: 8 + headerBytes.length,
    dataLength,
  });
}

/** Validates only the header of a whole safetensors buffer. */
export function readSafetensorsHeader(bytes: Uint8Array): SafetensorsHeader {
  const n = readHeaderLength(bytes, bytes.length);
  return parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.length - 8 - n);
}

/**
 * Parses a whole safetensors buffer. Each tensor is a typed-array view over `bytes` when its
 * data is aligned to its element size (always so for files this library or the reference
 * implementation writes, given an 8-aligned input); otherwise it is copied, and `zeroCopy` says so.
 */
export function parseSafetensors(bytes: Uint8Array): ParsedSafetensors {
  requireLittleEndian();
  const header = readSafetensorsHeader(bytes);
  const tensors = new Map<string, ParsedTensor>();
  for (const e of header.entries) {
    tensors.set(e.name, tensorAt(e, bytes, header.dataStart));
  }
  return Object.freeze({ header, tensors });
}

function tensorAt(e: SafetensorsEntry, bytes: Uint8Array, dataStart: number): ParsedTensor {
  const size = bytesPerElement(e.dtype);
  const start = dataStart + e.dataOffsets[0];
  const length = (e.dataOffsets[1] - e.dataOffsets[0]) / size;
  const abs = bytes.byteOffset + start;
  let data: TensorData;
  let zeroCopy: boolean;
  if (abs % size === 0) {
    data = viewOf(e.dtype, bytes.buffer, abs, length);
    zeroCopy = true;
  } else {
    const copy = bytes.slice(start, start + length * size);
    data = viewOf(e.dtype, copy.buffer, 0, length);
    zeroCopy = false;
  }
  const t: ParsedTensor = e.scale !== undefined
    ? { name: e.name, dtype: e.dtype, shape: e.shape, data, scale: e.scale, zeroCopy }
    : { name: e.name, dtype: e.dtype, shape: e.shape, data, zeroCopy };
  return Object.freeze(t);
}

/** Turns any {@link NamedTensors} into [name, tensor] pairs. */
export function namedEntries(tensors: NamedTensors): [string, Tensor][] {
  if (tensors instanceof Map) return [...(tensors as ReadonlyMap<string, Tensor>).entries()];
  if (Symbol.iterator in (tensors as object)) return [...(tensors as Iterable<readonly [string, Tensor]>)].map(([n, t]) => [n, t]);
  return Object.entries(tensors as Record<string, Tensor>);
}

/** Where each tensor goes in a file and the header bytes (8-byte prefix included). */
export interface SafetensorsPlan {
  readonly header: Uint8Array;
  /** Entries in data order: dtype rank descending, then name (UTF-8 byte order). */
  readonly entries: readonly SafetensorsEntry[];
  readonly dataStart: number;
  readonly dataLength: number;
  readonly totalLength: number;
}

/**
 * Lays out a safetensors file the way the reference implementation does: tensors sorted by
 * dtype (largest elements first) then name, so data stays aligned; `__metadata__` first with
 * sorted keys (plus `fedmm.scale.<name>` for each I8 tensor with a scale); the JSON header padded
 * with spaces to a multiple of 8 bytes.
 */
export function planSafetensors(descriptors: Iterable<TensorDescriptor>, metadata?: Readonly<Record<string, string>>): SafetensorsPlan {
  const list = [...descriptors];
  const seen = new Set<string>();
  for (const d of list) {
    if (typeof d.name !== 'string') throw new FedmmError('INVALID_ARGUMENT', 'a tensor name is not a string');
    if (d.name === METADATA_KEY) throw new FedmmError('INVALID_ARGUMENT', `"${METADATA_KEY}" is reserved and cannot name a tensor`);
    if (seen.has(d.name)) throw new FedmmError('INVALID_ARGUMENT', `tensor "${d.name}" is given twice; names must be unique`, { tensor: d.name });
    seen.add(d.name);
    if (!isDType(d.dtype)) throw new FedmmError('INVALID_ARGUMENT', `tensor "${d.name}": unknown dtype ${JSON.stringify(d.dtype)}`, { tensor: d.name });
    elementCount(d.shape);
    if (d.scale !== undefined) {
      if (d.dtype !== 'I8') throw new FedmmError('INVALID_ARGUMENT', `tensor "${d.name}": only I8 tensors carry a scale`, { tensor: d.name });
      checkScale(d.scale);
    }
  }
  list.sort((a, b) => dtypeRank(b.dtype) - dtypeRank(a.dtype) || compareUtf8(a.name, b.name));

  const meta = new Map<string, string>();
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new FedmmError('INVALID_ARGUMENT', `metadata "${k}" must be a string, got ${typeof v}`, { key: k });
      meta.set(k, v);
    }
  }
  for (const d of list) {
    if (d.scale === undefined) continue;
    const key = SCALE_METADATA_PREFIX + d.name;
    const value = String(d.scale);
    const given = meta.get(key);
    if (given !== undefined && Number(given) !== d.scale) {
      throw new FedmmError('INVALID_ARGUMENT', `metadata "${key}" is ${given} but tensor "${d.name}" has scale ${value}; drop the metadata key`, { tensor: d.name });
    }
    meta.set(key, value);
  }
  for (const k of meta.keys()) {
    if (!k.startsWith(SCALE_METADATA_PREFIX)) continue;
    const d = list.find((x) => x.name === k.slice(SCALE_METADATA_PREFIX.length));
    if (d === undefined || d.scale === undefined) {
      throw new FedmmError('INVALID_ARGUMENT', `metadata "${k}" names no I8 tensor with a scale; the "${SCALE_METADATA_PREFIX}" prefix is reserved`, { key: k });
    }
  }

  const entries: SafetensorsEntry[] = [];
  let offset = 0;
  const parts: string[] = [];
  if (metadata !== undefined || meta.size > 0) {
    const keys = [...meta.keys()].sort(compareUtf8);
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(meta.get(k))}`).join(',')}}`);
  }
  for (const d of list) {
    const nbytes = elementCount(d.shape) * bytesPerElement(d.dtype);
    const dataOffsets = Object.freeze([offset, offset + nbytes] as [number, number]);
    offset += nbytes;
    const shape = Object.freeze([...d.shape]);
    entries.push(Object.freeze(d.scale !== undefined
      ? { name: d.name, dtype: d.dtype, shape, dataOffsets, scale: d.scale }
      : { name: d.name, dtype: d.dtype, shape, dataOffsets }));
    parts.push(`${JSON.stringify(d.name)}:{"dtype":"${d.dtype}","shape":[${shape.join(',')}],"data_offsets":[${dataOffsets[0]},${dataOffsets[1]}]}`);
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = json.length + ((8 - (json.length % 8)) % 8);
  if (padded > MAX_HEADER_BYTES) {
    throw new FedmmError('RESOURCE_EXHAUSTED', `the safetensors header would be ${padded} bytes, over the ${MAX_HEADER_BYTES}-byte limit; write fewer tensors per file`);
  }
  const header = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  return Object.freeze({ header, entries: Object.freeze(entries), dataStart: 8 + padded, dataLength: offset, totalLength: 8 + padded + offset });
}

/** The descriptor of a tensor (for planning), checking its data against its dtype and shape. */
export function describeTensor(name: string, t: Tensor): TensorDescriptor {
  if (!isDType(t.dtype)) throw new FedmmError('INVALID_ARGUMENT', `tensor "${name}": unknown dtype ${JSON.stringify(t.dtype)}`, { tensor: name });
  if (!isDataOf(t.dtype, t.data)) {
    throw new FedmmError('INVALID_ARGUMENT', `tensor "${name}": ${t.dtype} data must be a ${viewOf(t.dtype, new ArrayBuffer(0), 0, 0).constructor.name}, got ${t.data.constructor.name}`, { tensor: name });
  }
  const n = elementCount(t.shape);
  if (t.data.length !== n) {
    throw new FedmmError('INVALID_ARGUMENT', `tensor "${name}": shape [${t.shape.join(', ')}] has ${n} elements but the data has ${t.data.length}`, { tensor: name });
  }
  return t.scale !== undefined ? { name, dtype: t.dtype, shape: t.shape, scale: t.scale } : { name, dtype: t.dtype, shape: t.shape };
}

/**
 * Serializes tensors into one safetensors buffer, byte-identical to what the reference
 * implementation writes for the same tensors and (single-key or empty) metadata.
 */
export function serializeSafetensors(tensors: NamedTensors, metadata?: Readonly<Record<string, string>>): Uint8Array {
  requireLittleEndian();
  const pairs = namedEntries(tensors);
  const byName = new Map<string, Tensor>();
  const descriptors = pairs.map(([name, t]) => {
    byName.set(name, t);
    return describeTensor(name, t);
  });
  const plan = planSafetensors(descriptors, metadata);
  const out = new Uint8Array(plan.totalLength);
  out.set(plan.header, 0);
  for (const e of plan.entries) {
    out.set(bytesOf(byName.get(e.name)!.data), plan.dataStart + e.dataOffsets[0]);
  }
  return out;
}
