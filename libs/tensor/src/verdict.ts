import { FedmmError } from '@fedmm/core';
import { shardKey } from './flat.js';
import { isSha256Hex } from './sha256.js';
import { CHUNK_HEADERS, type ChunkHeadersInput } from './chunk.js';

/**
 * Records on `fedmm.updates` are of two kinds, told apart by header `fedmm-kind`: update chunks
 * (see chunk.ts) and verdicts. The gateway publishes one verdict per shard an upload touched, in
 * the same partition and after the upload's chunks: a worker folds an upload's pending chunks of
 * a shard into the round's accumulator only when its accept verdict arrives, and drops them on a
 * reject. So a rejected update leaves nothing the aggregator could count.
 */
export const RECORD_KIND_HEADER = 'fedmm-kind';
export type UpdateRecordKind = 'chunk' | 'verdict';

export const VERDICT_HEADERS = Object.freeze({
  attempt: 'fedmm-attempt',
  verdict: 'fedmm-verdict',
  norm: 'fedmm-norm',
  upload: 'fedmm-upload',
});

export interface UpdateVerdict {
  readonly task: string;
  readonly round: number;
  /** Attempt of the round the upload belongs to (a failed round is retried under the same number). */
  readonly attempt: number;
  readonly client: string;
  readonly shard: number;
  /** sha256 of the whole update (the same as the chunks' `fedmm-update`). */
  readonly updateSha256: string;
  readonly accept: boolean;
  readonly numExamples: number;
  /** L2 norm of the whole update, as the gateway measured it. */
  readonly norm: number;
  /** Chunks the upload sent for this shard. */
  readonly seqCount: number;
}

/** The record kind of a message on fedmm.updates (chunks written without the header count as chunks). */
export function recordKind(headers: ChunkHeadersInput): UpdateRecordKind {
  const v = headers[RECORD_KIND_HEADER];
  const s = typeof v === 'string' ? v : v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : undefined;
  return s === 'verdict' ? 'verdict' : 'chunk';
}

/** Encodes a verdict as a Kafka record keyed like the shard's chunks. */
export function encodeVerdict(v: UpdateVerdict): { key: string; headers: Record<string, string>; value: Uint8Array } {
  if (!isSha256Hex(v.updateSha256)) throw new FedmmError('INVALID_ARGUMENT', 'verdict: updateSha256 must be a sha256 hex digest');
  return {
    key: shardKey(v.round, v.shard),
    value: new Uint8Array(0),
    headers: {
      [RECORD_KIND_HEADER]: 'verdict',
      [CHUNK_HEADERS.task]: v.task,
      [CHUNK_HEADERS.round]: String(v.round),
      [VERDICT_HEADERS.attempt]: String(v.attempt),
      [CHUNK_HEADERS.client]: v.client,
      [CHUNK_HEADERS.shard]: String(v.shard),
      [CHUNK_HEADERS.update]: v.updateSha256,
      [VERDICT_HEADERS.verdict]: v.accept ? 'accept' : 'reject',
      [CHUNK_HEADERS.numExamples]: String(v.numExamples),
      [VERDICT_HEADERS.norm]: String(v.norm),
      [CHUNK_HEADERS.seqCount]: String(v.seqCount),
    },
  };
}

function text(h: ChunkHeadersInput, name: string): string {
  const v = h[name];
  const one = Array.isArray(v) ? v[0] : v;
  if (one === undefined) throw new FedmmError('INVALID_ARGUMENT', `verdict record lacks header ${name}`);
  return typeof one === 'string' ? one : Buffer.from(one as Uint8Array).toString('utf8');
}

function uint(h: ChunkHeadersInput, name: string): number {
  const s = text(h, name);
  if (!/^(0|[1-9][0-9]{0,15})$/.test(s)) throw new FedmmError('INVALID_ARGUMENT', `verdict header ${name}=${JSON.stringify(s)} is not a non-negative integer`);
  return Number(s);
}

/** Decodes and validates a verdict record. */
export function decodeVerdict(headers: ChunkHeadersInput): UpdateVerdict {
  const verdict = text(headers, VERDICT_HEADERS.verdict);
  if (verdict !== 'accept' && verdict !== 'reject') throw new FedmmError('INVALID_ARGUMENT', `verdict ${JSON.stringify(verdict)} must be accept or reject`);
  const sha = text(headers, CHUNK_HEADERS.update);
  if (!isSha256Hex(sha)) throw new FedmmError('INVALID_ARGUMENT', 'verdict: fedmm-update is not a sha256 hex digest');
  const norm = Number(text(headers, VERDICT_HEADERS.norm));
  if (!Number.isFinite(norm) || norm < 0) throw new FedmmError('INVALID_ARGUMENT', 'verdict: fedmm-norm must be a finite non-negative number');
  return {
    task: text(headers, CHUNK_HEADERS.task),
    round: uint(headers, CHUNK_HEADERS.round),
    attempt: uint(headers, VERDICT_HEADERS.attempt),
    client: text(headers, CHUNK_HEADERS.client),
    shard: uint(headers, CHUNK_HEADERS.shard),
    updateSha256: sha,
    accept: verdict === 'accept',
    numExamples: uint(headers, CHUNK_HEADERS.numExamples),
    norm,
    seqCount: uint(headers, CHUNK_HEADERS.seqCount),
  };
}
