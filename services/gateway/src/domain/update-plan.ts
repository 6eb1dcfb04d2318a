import { FedmmError } from '@fedmm/core';
import {
  DEFAULT_SHARD_ELEMENTS, MAX_CHUNK_VALUE_BYTES, PARAM_DTYPES, bytesPerElement, checkScale, createLayout, isParamDType, isSha256Hex,
  type LayoutTensor, type TensorLayout,
} from '@fedmm/tensor';
import type { UploadHeaderInfo, UploadPolicy } from './types.js';

/** One Kafka chunk an upload will produce: a contiguous run of round-layout elements inside one shard. */
export interface PlannedRecord {
  readonly shard: number;
  /** Position among this upload's chunks of the shard. */
  readonly seq: number;
  /** First element, in the round layout's flattened space. */
  readonly elementOffset: number;
  readonly count: number;
  /** Payload bytes [byteStart, byteEnd) of the client's update that hold these elements. */
  readonly byteStart: number;
  readonly byteEnd: number;
}

/** Everything the gateway derives from an upload header and the round's policy before bytes flow. */
export interface UpdatePlan {
  /** The tensors the client sends, in payload order. */
  readonly clientLayout: TensorLayout;
  /** Per client tensor: the round-layout element offset it starts at. */
  readonly globalOffsets: readonly number[];
  /** Per client tensor: its I8 scale (undefined for float tensors). */
  readonly scales: readonly (number | undefined)[];
  /** Fingerprint of the round's layout, stamped on every chunk. */
  readonly roundFingerprint: string;
  readonly shardElements: number;
  /** Chunks in payload order; every payload byte belongs to exactly one. */
  readonly records: readonly PlannedRecord[];
  /** Chunks per shard (the verdicts' seq count). */
  readonly seqCounts: ReadonlyMap<number, number>;
  /** Shards the upload touches, ascending. */
  readonly shards: readonly number[];
  /** A secure-aggregation upload: the payload is masked uint32 words, copied as they are. */
  readonly masked?: boolean;
}

const UPLOAD_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const shapeText = (s: readonly number[]): string => `[${s.join(', ')}]`;

/** The round's layout as the policy states it (dtype is irrelevant for element offsets; missing ones read as F32). */
export function roundLayoutOf(policy: UploadPolicy): TensorLayout {
  return createLayout(policy.tensors.map((t) => ({ ...t, dtype: isParamDType(t.dtype) ? t.dtype : 'F32' })));
}

/**
 * Checks an upload header against the round's policy and plans the chunks the upload becomes.
 * The plan depends only on the layouts and the shard size, so a resumed or repeated upload
 * produces the same chunks with the same sequence numbers.
 */
export function planUpdate(header: UploadHeaderInfo, policy: UploadPolicy, roundLayout: TensorLayout = roundLayoutOf(policy)): UpdatePlan {
  if (!UPLOAD_ID.test(header.uploadId)) {
    throw new FedmmError('INVALID_ARGUMENT', `upload id ${JSON.stringify(header.uploadId)} is not valid: use 1-128 letters, digits, '.', '_' or '-'`);
  }
  if (!isSha256Hex(header.sha256)) throw new FedmmError('INVALID_ARGUMENT', 'header.sha256 must be the lower-case hex sha256 of the whole update payload');
  if (header.tensors.length === 0) throw new FedmmError('INVALID_ARGUMENT', 'the upload header lists no tensors; send the layout of the tensors in the update');
  const roundByName = new Map(roundLayout.entries.map((e) => [e.name, e]));
  const clientTensors: LayoutTensor[] = [];
  const scaleByName = new Map<string, number>();
  for (const t of header.tensors) {
    const r = roundByName.get(t.name);
    if (!r) {
      throw new FedmmError('INVALID_ARGUMENT', `tensor ${JSON.stringify(t.name)} is not part of round ${header.round} of task ${header.taskId}; send only tensors of the round's layout`, { tensor: t.name });
    }
    if (!isParamDType(t.dtype)) {
      throw new FedmmError('INVALID_ARGUMENT', `tensor ${JSON.stringify(t.name)} has dtype ${t.dtype}; updates are sent as ${PARAM_DTYPES.join(', ')}`, { tensor: t.name });
    }
    if (t.shape.length !== r.shape.length || t.shape.some((d, i) => d !== r.shape[i])) {
      throw new FedmmError('INVALID_ARGUMENT', `tensor ${JSON.stringify(t.name)} has shape ${shapeText(t.shape)} but the round's layout has ${shapeText(r.shape)}`, { tensor: t.name });
    }
    if (t.dtype === 'I8') {
      try {
        checkScale(t.scale ?? 0);
      } catch {
        throw new FedmmError('INVALID_ARGUMENT', `tensor ${JSON.stringify(t.name)} is I8 with scale ${String(t.scale)}; an I8 tensor needs a positive finite scale`, { tensor: t.name });
      }
      scaleByName.set(t.name, t.scale!);
    }
    clientTensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, ...(r.modality !== undefined ? { modality: r.modality } : {}) });
  }
  const clientLayout = createLayout(clientTensors);
  if (clientLayout.totalElements === 0) throw new FedmmError('INVALID_ARGUMENT', 'the update holds no elements; send at least one non-empty tensor');
  if (header.size !== clientLayout.totalBytes) {
    throw new FedmmError('INVALID_ARGUMENT', `header.size is ${header.size} bytes but the ${clientLayout.entries.length} tensors of the layout take ${clientLayout.totalBytes}; size is the byte length of the concatenated tensors`);
  }
  if (policy.maxUpdateBytes > 0 && header.size > policy.maxUpdateBytes) {
    throw new FedmmError('RESOURCE_EXHAUSTED', `update of ${header.size} bytes exceeds the task's limit of ${policy.maxUpdateBytes} bytes; send fewer or smaller tensors (F16, BF16 or I8)`);
  }
  const shardElements = policy.shardElements > 0 ? policy.shardElements : DEFAULT_SHARD_ELEMENTS;
  if (!Number.isSafeInteger(shardElements) || shardElements * 4 > MAX_CHUNK_VALUE_BYTES) {
    throw new FedmmError('FAILED_PRECONDITION', `the round's shard size ${shardElements} elements does not fit one Kafka chunk (${MAX_CHUNK_VALUE_BYTES / 4} F32 elements at most); the task's configuration must be fixed`);
  }

  const globalOffsets: number[] = [];
  const scales: (number | undefined)[] = [];
  const records: { shard: number; seq: number; elementOffset: number; count: number; byteStart: number; byteEnd: number }[] = [];
  const seqCounts = new Map<number, number>();
  for (const e of clientLayout.entries) {
    const g0 = roundByName.get(e.name)!.offset;
    globalOffsets.push(g0);
    scales.push(scaleByName.get(e.name));
    const size = bytesPerElement(e.dtype);
    let cursor = g0;
    const end = g0 + e.length;
    while (cursor < end) {
      const shard = Math.floor(cursor / shardElements);
      const stop = Math.min((shard + 1) * shardElements, end);
      const byteEnd = e.byteOffset + (stop - g0) * size;
      const last = records[records.length - 1];
      // Adjacent tensors continue one run; a skipped tensor (a modality the client lacks) starts another.
      if (last && last.shard === shard && last.elementOffset + last.count === cursor) {
        last.count += stop - cursor;
        last.byteEnd = byteEnd;
      } else {
        const seq = seqCounts.get(shard) ?? 0;
        seqCounts.set(shard, seq + 1);
        records.push({ shard, seq, elementOffset: cursor, count: stop - cursor, byteStart: e.byteOffset + (cursor - g0) * size, byteEnd });
      }
      cursor = stop;
    }
  }
  return Object.freeze({
    clientLayout,
    globalOffsets: Object.freeze(globalOffsets),
    scales: Object.freeze(scales),
    roundFingerprint: policy.fingerprint || roundLayout.fingerprint,
    shardElements,
    records: Object.freeze(records.map((r) => Object.freeze(r))),
    seqCounts,
    shards: Object.freeze([...seqCounts.keys()].sort((a, b) => a - b)),
  });
}
