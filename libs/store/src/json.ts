import { FedmmError } from '@fedmm/core';
import type { Store } from './port.js';

/** A typed JSON document in the store. */
export interface Doc<T> {
  value: T;
  version: number;
}

export async function getJson<T>(store: Store, key: string): Promise<Doc<T> | undefined> {
  const e = await store.get(key);
  if (!e) return undefined;
  return { value: JSON.parse(e.value) as T, version: e.version };
}

/**
 * Read-modify-write with compare-and-set, retried on conflict. `update` gets the current value
 * (undefined when absent) and returns the next one, or undefined to leave the key unchanged.
 */
export async function updateJson<T>(
  store: Store,
  key: string,
  update: (current: T | undefined) => T | undefined | Promise<T | undefined>,
  opts: { maxAttempts?: number } = {},
): Promise<Doc<T> | undefined> {
  const max = opts.maxAttempts ?? 200;
  for (let attempt = 0; attempt < max; attempt++) {
    const cur = await getJson<T>(store, key);
    const next = await update(cur?.value);
    if (next === undefined) return cur;
    const v = await store.compareAndSet(key, cur?.version ?? 0, JSON.stringify(next));
    if (v !== undefined) return { value: next, version: v };
    // Back off a little so many writers on one key make progress.
    await new Promise((r) => setTimeout(r, Math.min(50, attempt * 2) * Math.random()));
  }
  throw new FedmmError('ABORTED', `too much contention updating ${key}; retry the operation`);
}

export async function listJson<T>(store: Store, prefix: string): Promise<{ key: string; value: T; version: number }[]> {
  return (await store.list(prefix)).map((e) => ({ key: e.key, value: JSON.parse(e.value) as T, version: e.version }));
}
