/** The store port: a small key-value store with versions, compare-and-set and prefix listing. */

export interface Entry {
  key: string;
  value: string;
  /** Increases by at least one on every write of the key; 0 never occurs for a stored key. */
  version: number;
}

/** One precondition of an atomic batch: the key has this version (0 = the key must not exist). */
export interface Check {
  key: string;
  version: number;
}

/** One write of an atomic batch: a value to put, or null to delete. */
export interface Write {
  key: string;
  value: string | null;
}

export interface Store {
  readonly kind: 'redis' | 'sqlite';
  get(key: string): Promise<Entry | undefined>;
  /** Unconditional write; returns the new version. */
  put(key: string, value: string): Promise<number>;
  delete(key: string): Promise<boolean>;
  /**
   * Writes value only if the key's version equals expectedVersion (0: only if absent).
   * Returns the new version, or undefined when the precondition failed (nothing written).
   */
  compareAndSet(key: string, expectedVersion: number, value: string): Promise<number | undefined>;
  /** All checks hold and all writes apply, or nothing changes. Returns false when a check failed. */
  atomic(checks: Check[], writes: Write[]): Promise<boolean>;
  /** Adds delta to an integer counter (absent = 0) and returns the new value. */
  increment(key: string, delta: number): Promise<number>;
  /** Entries whose key starts with prefix, sorted by key. */
  list(prefix: string, limit?: number): Promise<Entry[]>;
  close(): Promise<void>;
}

/** Key naming: everything under `fedmm:`, namespaced by area then ids. */
export function storeKey(...parts: (string | number)[]): string {
  for (const p of parts) {
    if (String(p).includes(':')) throw new Error(`store key part ${JSON.stringify(p)} must not contain ':'`);
  }
  return ['fedmm', ...parts.map(String)].join(':');
}
