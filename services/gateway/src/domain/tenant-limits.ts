import { FedmmError, sleep } from '@fedmm/core';

export interface TenantLimitOptions {
  readonly maxStreamsPerTenant: number;
  /** 0 = unlimited. */
  readonly bytesPerSecond: number;
  readonly maxWaitMs: number;
  readonly now?: () => number;
}

interface Bucket {
  /** May go negative: the debt a sender works off by waiting. */
  tokens: number;
  refilledAt: number;
}

/**
 * Per-tenant fairness at the edge: a cap on concurrent upload and download streams, and a token
 * bucket on the bytes they move. A stream that would wait longer than `maxWaitMs` for its
 * bandwidth fails with RESOURCE_EXHAUSTED instead of holding the connection open.
 */
export class TenantLimits {
  readonly #streams = new Map<string, number>();
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;

  constructor(private readonly opts: TenantLimitOptions) {
    this.#now = opts.now ?? Date.now;
  }

  /** Takes one stream slot of the tenant; returns the function that gives it back. */
  acquireStream(tenant: string, what: string): () => void {
    const n = this.#streams.get(tenant) ?? 0;
    if (n >= this.opts.maxStreamsPerTenant) {
      throw new FedmmError('RESOURCE_EXHAUSTED', `tenant ${tenant} already has ${n} upload/download streams open, the limit is ${this.opts.maxStreamsPerTenant} (FEDMM_GATEWAY_MAX_STREAMS_PER_TENANT); finish one before starting this ${what}`);
    }
    this.#streams.set(tenant, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const m = (this.#streams.get(tenant) ?? 1) - 1;
      if (m <= 0) this.#streams.delete(tenant);
      else this.#streams.set(tenant, m);
    };
  }

  /** Streams the tenant holds now. */
  openStreams(tenant: string): number {
    return this.#streams.get(tenant) ?? 0;
  }

  /** Charges `bytes` to the tenant's bandwidth, waiting as long as the rate demands. */
  async throttle(tenant: string, bytes: number, signal?: AbortSignal): Promise<void> {
    const rate = this.opts.bytesPerSecond;
    if (rate <= 0 || bytes <= 0) return;
    const now = this.#now();
    // One second of rate, and at least one full 1 MiB chunk, may pass at once.
    const capacity = Math.max(rate, 1024 * 1024);
    const b = this.#buckets.get(tenant) ?? { tokens: capacity, refilledAt: now };
    b.tokens = Math.min(capacity, b.tokens + ((now - b.refilledAt) / 1000) * rate);
    b.refilledAt = now;
    this.#buckets.set(tenant, b);
    const waitMs = b.tokens >= bytes ? 0 : ((bytes - b.tokens) / rate) * 1000;
    if (waitMs > this.opts.maxWaitMs) {
      throw new FedmmError('RESOURCE_EXHAUSTED', `tenant ${tenant} exceeds its bandwidth limit of ${rate} bytes/s (FEDMM_GATEWAY_BYTES_PER_SECOND): this ${bytes}-byte message would wait ${Math.ceil(waitMs)} ms; send less at once or use fewer parallel streams, then resume`);
    }
    b.tokens -= bytes;
    if (waitMs > 0) await sleep(waitMs, signal);
  }
}
