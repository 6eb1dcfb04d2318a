import { randomInt } from 'node:crypto';
import { FedmmError, sleep, type ErrorCode } from '@fedmm/core';

/** How a failing call is retried: exponential delays from `baseMs`, capped at `capMs`, at most `maxAttempts` tries in all. */
export interface BackoffPolicy {
  readonly baseMs: number;
  readonly capMs: number;
  /** Tries in all, the first included; Infinity retries until the signal aborts. */
  readonly maxAttempts: number;
}

/** Defaults for one RPC: 8 tries over about a minute at worst. */
export const DEFAULT_BACKOFF: BackoffPolicy = Object.freeze({ baseMs: 250, capMs: 15_000, maxAttempts: 8 });

/** Codes that say "the platform is away or busy, try again" rather than "this request is wrong". */
export const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['UNAVAILABLE', 'DEADLINE_EXCEEDED', 'ABORTED', 'RESOURCE_EXHAUSTED', 'INTERNAL']);

/** Whether an error is worth another try. */
export function isRetryable(e: unknown): boolean {
  return e instanceof FedmmError && RETRYABLE_CODES.has(e.code);
}

/**
 * Delay before retry number `retry` (0 = the first retry): "equal jitter", half the exponential
 * step fixed and half uniform, so retries spread out but never collapse to zero. Jitter comes
 * from node:crypto only to keep one source of randomness in the agent; nothing secret depends on it.
 */
export function backoffDelay(policy: BackoffPolicy, retry: number, random: () => number = uniform): number {
  const step = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(retry, 52));
  return Math.floor(step / 2 + (step / 2) * random());
}

function uniform(): number {
  return randomInt(0, 2 ** 32) / 2 ** 32;
}

export interface RetryOptions {
  readonly policy?: BackoffPolicy;
  readonly signal?: AbortSignal;
  /** Default: {@link isRetryable}. */
  readonly retryable?: (e: unknown) => boolean;
  readonly onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
  readonly random?: () => number;
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Runs `fn` until it succeeds, fails with a non-retryable error, or the policy's tries are spent (the last error is thrown). */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const policy = options.policy ?? DEFAULT_BACKOFF;
  const retryable = options.retryable ?? isRetryable;
  const wait = options.sleep ?? sleep;
  for (let attempt = 0; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (e) {
      if (!retryable(e) || attempt + 1 >= policy.maxAttempts || options.signal?.aborted) throw e;
      const delayMs = backoffDelay(policy, attempt, options.random);
      options.onRetry?.({ attempt, delayMs, error: e });
      await wait(delayMs, options.signal);
    }
  }
}
