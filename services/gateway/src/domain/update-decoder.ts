import { FedmmError } from '@fedmm/core';
import { bytesPerElement, decodeBf16, decodeF16, dequantizeInt8, type ParamDType } from '@fedmm/tensor';
import type { PlannedRecord, UpdatePlan } from './update-plan.js';

/** A planned chunk whose values are all decoded. */
export interface FilledRecord extends PlannedRecord {
  readonly values: Float32Array;
}

/**
 * Turns an update payload, fed in pieces of any size, into Float32 chunks of the round layout:
 * converts F16, BF16 and I8, rejects non-finite values, sums squares for the L2 norm, and emits
 * each planned record as soon as its last element arrived. It holds at most one partly filled
 * record (one shard's worth of Float32) and the few bytes of an element split between pieces.
 */
export class UpdateDecoder {
  #processed = 0;
  #sumSquares = 0;
  #emittedSumSquares = 0;
  #record = 0;
  #fill = 0;
  #values: Float32Array | undefined;
  #tensor = 0;
  #element = 0;
  readonly #carry = new Uint8Array(4);
  #carryLength = 0;
  #scratch = new Uint16Array(0);

  /**
   * A decoder at payload offset 0, or, with `from`, one continuing at a record boundary of the plan
   * (a checkpoint: `offset` is a record's byteStart or the payload size, `sumSquares` the sum of
   * squares of everything before it).
   */
  constructor(private readonly plan: UpdatePlan, from?: { readonly offset: number; readonly sumSquares: number }) {
    if (from && from.offset > 0) {
      const { offset } = from;
      const total = plan.clientLayout.totalBytes;
      const record = offset === total ? plan.records.length : recordStartingAt(plan, offset);
      if (record < 0 || !Number.isFinite(from.sumSquares) || from.sumSquares < 0) {
        throw new FedmmError('FAILED_PRECONDITION', `cannot continue the upload at offset ${offset}: it is not a chunk boundary of the plan (or the saved norm is invalid); start the upload over`);
      }
      this.#record = record;
      this.#processed = offset;
      this.#sumSquares = this.#emittedSumSquares = from.sumSquares;
      const entries = plan.clientLayout.entries;
      this.#tensor = entries.length;
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        if (e.length > 0 && offset < e.byteOffset + e.byteLength) {
          this.#tensor = i;
          this.#element = (offset - e.byteOffset) / bytesPerElement(e.dtype);
          break;
        }
      }
    }
    this.#skipEmptyTensors();
  }

  /** Payload bytes consumed so far. */
  get processed(): number {
    return this.#processed;
  }

  /** Sum of squares of every value decoded so far. */
  get sumSquares(): number {
    return this.#sumSquares;
  }

  /** Sum of squares of the values of the emitted records: the norm's part up to `emittedThrough`. */
  get emittedSumSquares(): number {
    return this.#emittedSumSquares;
  }

  /** Payload offset up to which every byte belongs to an emitted record: a safe resume point. */
  get emittedThrough(): number {
    const r = this.plan.records[this.#record];
    return r ? r.byteStart : this.plan.clientLayout.totalBytes;
  }

  /** Decodes the next payload bytes (continuing at `processed`); returns the records they completed. */
  push(data: Uint8Array): FilledRecord[] {
    const out: FilledRecord[] = [];
    const entries = this.plan.clientLayout.entries;
    let at = 0;
    if (this.#processed + data.length > this.plan.clientLayout.totalBytes) {
      throw new FedmmError('OUT_OF_RANGE', `payload runs past the declared ${this.plan.clientLayout.totalBytes} bytes`);
    }
    while (at < data.length) {
      const e = entries[this.#tensor]!;
      const size = bytesPerElement(e.dtype);
      if (this.#carryLength > 0 || data.length - at < size) {
        // An element split between pieces: collect its bytes, decode it alone.
        const take = Math.min(size - this.#carryLength, data.length - at);
        this.#carry.set(data.subarray(at, at + take), this.#carryLength);
        this.#carryLength += take;
        at += take;
        if (this.#carryLength < size) break;
        this.#carryLength = 0;
        this.#decode(e.dtype, this.#carry.subarray(0, size), 1, out);
        continue;
      }
      const record = this.plan.records[this.#record]!;
      const n = Math.min(Math.floor((data.length - at) / size), e.length - this.#element, record.count - this.#fill);
      this.#decode(e.dtype, data.subarray(at, at + n * size), n, out);
      at += n * size;
    }
    this.#processed += data.length;
    return out;
  }

  #decode(dtype: ParamDType, bytes: Uint8Array, n: number, out: FilledRecord[]): void {
    const record = this.plan.records[this.#record]!;
    this.#values ??= new Float32Array(record.count);
    const dst = this.#values.subarray(this.#fill, this.#fill + n);
    switch (dtype) {
      case 'F32':
        new Uint8Array(dst.buffer, dst.byteOffset, n * 4).set(bytes);
        break;
      case 'F16':
      case 'BF16': {
        let src: Uint16Array;
        if (bytes.byteOffset % 2 === 0) {
          src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
        } else {
          if (this.#scratch.length < n) this.#scratch = new Uint16Array(n);
          src = this.#scratch.subarray(0, n);
          new Uint8Array(src.buffer, src.byteOffset, n * 2).set(bytes);
        }
        if (dtype === 'F16') decodeF16(src, dst);
        else decodeBf16(src, dst);
        break;
      }
      case 'I8':
        dequantizeInt8(new Int8Array(bytes.buffer, bytes.byteOffset, n), this.plan.scales[this.#tensor]!, dst);
        break;
    }
    // Masked words are uniform bit patterns, not numbers: no finiteness, no norm.
    let s = 0;
    if (!this.plan.masked) for (let i = 0; i < n; i++) s += dst[i]! * dst[i]!;
    // Squares of finite float32 values cannot overflow a double, so a non-finite sum means a NaN or an infinity.
    if (!Number.isFinite(s)) {
      const bad = dst.findIndex((v) => !Number.isFinite(v));
      const e = this.plan.clientLayout.entries[this.#tensor]!;
      throw new FedmmError('INVALID_ARGUMENT', `tensor ${JSON.stringify(e.name)} element ${this.#element + bad} is ${String(dst[bad])}; updates must be finite (check the training for divergence)`, { tensor: e.name, element: this.#element + bad });
    }
    this.#sumSquares += s;
    this.#fill += n;
    this.#element += n;
    if (this.#fill === record.count) {
      out.push({ ...record, values: this.#values });
      this.#emittedSumSquares = this.#sumSquares;
      this.#values = undefined;
      this.#fill = 0;
      this.#record++;
    }
    if (this.#element === this.plan.clientLayout.entries[this.#tensor]!.length) {
      this.#tensor++;
      this.#element = 0;
      this.#skipEmptyTensors();
    }
  }

  #skipEmptyTensors(): void {
    const entries = this.plan.clientLayout.entries;
    while (this.#tensor < entries.length && entries[this.#tensor]!.length === 0) this.#tensor++;
  }
}

/** Index of the plan's record that starts at payload byte `offset`, or -1. */
function recordStartingAt(plan: UpdatePlan, offset: number): number {
  let lo = 0;
  let hi = plan.records.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const start = plan.records[mid]!.byteStart;
    if (start === offset) return mid;
    if (start < offset) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}
