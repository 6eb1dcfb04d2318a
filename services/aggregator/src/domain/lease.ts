import { randomUUID } from 'node:crypto';
import type { Logger } from '@fedmm/core';
import { storeKey, type Store } from '@fedmm/store';

interface LeaseDoc {
  holder: string;
  token: number;
  expiresAt: number;
}

/**
 * A leader lease in the store with a fencing token. Every write the leader makes is checked
 * against the lease key's version (see `fence()`), so a coordinator that lost its lease, even
 * one paused past its expiry, can never overwrite a newer leader's state.
 */
export class LeaderLease {
  readonly id = randomUUID();
  private version = 0;
  private token = 0;
  private expiresAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly key: string;

  constructor(private readonly store: Store, private readonly log: Logger, private readonly ttlMs: number, name = 'coordinator') {
    this.key = storeKey('aggregator', 'lease', name);
  }

  get isLeader(): boolean {
    return this.version > 0 && Date.now() < this.expiresAt;
  }

  get fencingToken(): number {
    return this.token;
  }

  /** The check every leader write carries: the lease is still the one this replica holds. */
  fence(): { key: string; version: number } {
    return { key: this.key, version: this.version };
  }

  /** Tries to take or renew the lease; returns whether this replica leads. */
  async tick(): Promise<boolean> {
    const now = Date.now();
    const cur = await this.store.get(this.key);
    const doc = cur ? (JSON.parse(cur.value) as LeaseDoc) : undefined;
    if (doc && doc.holder !== this.id && doc.expiresAt > now) {
      if (this.version) this.log.warn('lost the coordinator lease', { holder: doc.holder });
      this.version = 0;
      return false;
    }
    const token = doc && doc.holder === this.id ? doc.token : (doc?.token ?? 0) + 1;
    const next: LeaseDoc = { holder: this.id, token, expiresAt: now + this.ttlMs };
    const v = await this.store.compareAndSet(this.key, cur?.version ?? 0, JSON.stringify(next));
    if (v === undefined) {
      this.version = 0;
      return false;
    }
    if (!this.version || this.token !== token) this.log.info('leading the coordinators', { fencingToken: token });
    this.version = v;
    this.token = token;
    this.expiresAt = next.expiresAt - this.ttlMs / 4;
    return true;
  }

  /** Keeps renewing; calls onChange when leadership starts or ends. */
  run(onChange: (leader: boolean) => void): void {
    let was = false;
    const loop = async (): Promise<void> => {
      let now = false;
      try {
        now = await this.tick();
      } catch (e) {
        this.log.warn('lease renewal failed', { err: e });
        now = this.isLeader;
      }
      if (now !== was) {
        was = now;
        onChange(now);
      }
      this.timer = setTimeout(() => void loop(), Math.max(50, this.ttlMs / 3));
    };
    void loop();
  }

  async release(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.version) {
      await this.store.atomic([{ key: this.key, version: this.version }], [{ key: this.key, value: null }]).catch(() => false);
      this.version = 0;
    }
  }
}
