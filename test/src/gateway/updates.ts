// Client-side helpers: build update payloads in every dtype and stream them to the gateway.
import type { ClientWritableStream } from '@grpc/grpc-js';
import { gateway as gpb, tensor as tensorPb } from '@fedmm/proto';
import { bytesOf, crc32c, decodeBf16, decodeF16, encodeBf16, encodeF16, quantizeInt8, sha256Hex, type ParamDType } from '@fedmm/tensor';
import type { GatewayClient } from './harness.js';

const DTYPE: Record<ParamDType, tensorPb.DType> = {
  F32: tensorPb.DType.D_TYPE_F32, F16: tensorPb.DType.D_TYPE_F16, BF16: tensorPb.DType.D_TYPE_BF16, I8: tensorPb.DType.D_TYPE_I8,
};

export interface BuiltUpdate {
  header: gpb.UploadHeader;
  bytes: Buffer;
  /** The Float32 values the gateway must publish, per tensor. */
  expected: Map<string, Float32Array>;
  sumSquares: number;
}

/** Deterministic pseudo-random values in [-scale, scale). */
export function values(n: number, seed: number, scale = 0.05): Float32Array {
  const v = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    v[i] = ((x >>> 0) / 2 ** 32 - 0.5) * 2 * scale;
  }
  return v;
}

/** Builds an update of the given tensors (each in its dtype), in payload order (sorted by name). */
export function buildUpdate(taskId: string, round: number, uploadId: string, tensors: { name: string; shape: number[]; dtype: ParamDType; values?: Float32Array }[], numExamples = 100): BuiltUpdate {
  const sorted = [...tensors].sort((a, b) => (Buffer.compare(Buffer.from(a.name), Buffer.from(b.name))));
  const parts: Uint8Array[] = [];
  const expected = new Map<string, Float32Array>();
  const specs: tensorPb.TensorSpec[] = [];
  let sumSquares = 0;
  sorted.forEach((t, i) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const v = t.values ?? values(n, 1000 + i * 7919);
    let exp: Float32Array;
    let scale = 0;
    switch (t.dtype) {
      case 'F32': parts.push(bytesOf(v)); exp = v; break;
      case 'F16': { const b = encodeF16(v); parts.push(bytesOf(b)); exp = decodeF16(b); break; }
      case 'BF16': { const b = encodeBf16(v); parts.push(bytesOf(b)); exp = decodeBf16(b); break; }
      case 'I8': {
        const q = quantizeInt8(v);
        scale = Math.fround(q.scale);
        parts.push(bytesOf(q.values));
        exp = Float32Array.from(q.values, (x) => x * scale);
        break;
      }
    }
    for (const x of exp) sumSquares += x * x;
    expected.set(t.name, exp);
    specs.push(tensorPb.TensorSpec.fromPartial({ name: t.name, dtype: DTYPE[t.dtype], shape: t.shape, scale }));
  });
  const bytes = Buffer.concat(parts);
  const header = gpb.UploadHeader.fromPartial({
    taskId, round, uploadId, layout: { tensors: specs }, sha256: sha256Hex(bytes), size: bytes.length, numExamples, samplingRate: 0.01, noiseMultiplier: 1.1, steps: 50,
  });
  return { header, bytes, expected, sumSquares };
}

export interface SendOptions {
  from?: number;
  chunkBytes?: number;
  /** Stop after this many chunks and leave the call open (the caller cuts it). */
  stopAfter?: number;
  /** Replace a chunk's CRC with a wrong one. */
  corruptChunk?: number;
}

export interface UploadCall {
  call: ClientWritableStream<gpb.UploadUpdateRequest>;
  result: Promise<gpb.UploadUpdateResponse>;
  /** Resolves once everything the options ask for is written. */
  written: Promise<void>;
}

/** Opens UploadUpdate, writes the header and the chunks from `from`, and ends the stream (unless `stopAfter`). */
export function sendUpdate(client: GatewayClient, header: gpb.UploadHeader, bytes: Uint8Array, opts: SendOptions = {}): UploadCall {
  let settle!: { resolve: (r: gpb.UploadUpdateResponse) => void; reject: (e: Error) => void };
  const result = new Promise<gpb.UploadUpdateResponse>((resolve, reject) => (settle = { resolve, reject }));
  result.catch(() => undefined);
  const call = client.uploadUpdate({}, (err, res) => (err ? settle.reject(err) : settle.resolve(res!)));
  const write = (m: gpb.UploadUpdateRequest): Promise<void> => new Promise((resolve) => (call.write(m) ? resolve() : call.once('drain', resolve)));
  const chunkBytes = opts.chunkBytes ?? 1024 * 1024;
  const written = (async () => {
    await write({ payload: { $case: 'header', value: header } });
    let n = 0;
    for (let off = opts.from ?? 0; off < bytes.length; off += chunkBytes) {
      if (opts.stopAfter !== undefined && n >= opts.stopAfter) return;
      const data = bytes.subarray(off, Math.min(off + chunkBytes, bytes.length));
      const crc = n === opts.corruptChunk ? (crc32c(data) ^ 1) >>> 0 : crc32c(data);
      await write({ payload: { $case: 'chunk', value: { offset: off, data: Buffer.from(data), crc32c: crc } } });
      n++;
    }
    call.end();
  })();
  written.catch(() => undefined);
  return { call, result, written };
}

/** Sends a whole update and returns the gateway's answer. */
export async function upload(client: GatewayClient, u: BuiltUpdate, opts: SendOptions = {}): Promise<gpb.UploadUpdateResponse> {
  return sendUpdate(client, u.header, u.bytes, opts).result;
}
