/** Resolves after ms milliseconds; rejects early when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Exponential backoff with full jitter, capped. */
export function backoffMs(attempt: number, baseMs = 200, capMs = 10_000): number {
  const exp = Math.min(capMs, baseMs * 2 ** attempt);
  return Math.floor(exp / 2 + (exp / 2) * Math.random());
}

/** Polls until fn returns a truthy value or the timeout passes. */
export async function waitFor<T>(fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, opts: { timeoutMs: number; intervalMs?: number; what: string }): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}`);
    await sleep(opts.intervalMs ?? 50);
  }
}

/** A simple async mutex (per key), so read-modify-write sequences in one process never interleave. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** A task that runs again a fixed time after each run settles; see {@link repeat}. */
export interface Repeating {
  /** True once stop() was called: a run still in flight can skip what must not happen after it. */
  readonly stopped: boolean;
  /** Cancels the next run, waits for a run in flight, and starts none after it. */
  stop(): Promise<void>;
}

/**
 * Runs fn now and then intervalMs after each run settles, never two at once. fn handles its own
 * errors (a rejection is ignored). After stop() resolves no run is in flight or scheduled, so the
 * caller may close what fn uses.
 */
export function repeat(fn: () => Promise<void>, intervalMs: number): Repeating {
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  const state = {
    stopped: false,
    async stop(): Promise<void> {
      state.stopped = true;
      clearTimeout(timer);
      await inFlight;
    },
  };
  const run = (): void => {
    inFlight = fn().catch(() => undefined).then(() => {
      if (!state.stopped) timer = setTimeout(run, intervalMs);
    });
  };
  run();
  return state;
}
