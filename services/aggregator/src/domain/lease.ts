import { randomUUID } from 'node:crypto';
import { repeat, type Logger, type Repeating } from '@fedmm/core';
import { storeKey, type Store } from '@fedmm/store';

interface LeaseDoc {
  holder: string;
  token: number;
  expiresAt: number;
}

/**
 * A leader lease in the store with a fencing token. The lease key holds the expiry and is renewed
 * often; a separate fence key changes only when leadership changes hands. Every write the leader
 * makes is checked against the fence key's version (see `fence()`), so a coordinator that lost
 * its lease, even one paused past its expiry, can never overwrite a newer leader's state, while
 * its own renewals never invalidate its writes in flight.
 */
export class LeaderLease {
  readonly id = randomUUID();
  private version = 0;
  private fenceVersion = 0;
  private token = 0;
  private expiresAt = 0;
  private renewals: Repeating | undefined;
  private readonly key: string;

  constructor(private readonly store: Store, private readonly log: Logger, private readonly ttlMs: number, name = 'coordinator') {
    this.key = storeKey('aggregator', 'lease', name);
    this.fenceKey = storeKey('aggregator', 'lease', `${name}-fence`);
  }

  private readonly fenceKey: string;

  get isLeader(): boolean {
    return this.version > 0 && Date.now() < this.expiresAt;
  }

  get fencingToken(): number {
    return this.token;
  }

  /** The check every leader write carries: the lease is still the one this replica holds. */
  fence(): { key: string; version: number } {
    return { key: this.fenceKey, version: this.fenceVersion };
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
    const renewing = doc !== undefined && doc.holder === this.id;
    const token = renewing ? doc.token : (doc?.token ?? 0) + 1;
    const next: LeaseDoc = { holder: this.id, token, expiresAt: now + this.ttlMs };
    if (renewing) {
      const v = await this.store.compareAndSet(this.key, cur!.version, JSON.stringify(next));
      if (v === undefined) {
        this.version = 0;
        return false;
      }
      this.version = v;
    } else {
      const fenceCur = await this.store.get(this.fenceKey);
      const ok = await this.store.atomic(
        [{ key: this.key, version: cur?.version ?? 0 }, { key: this.fenceKey, version: fenceCur?.version ?? 0 }],
        [{ key: this.key, value: JSON.stringify(next) }, { key: this.fenceKey, value: JSON.stringify({ holder: this.id, token }) }],
      );
      if (!ok) {
        this.version = 0;
        return false;
      }
      const [lease, fence] = await Promise.all([this.store.get(this.key), this.store.get(this.fenceKey)]);
      if (!lease || !fence || (JSON.parse(fence.value) as { holder: string }).holder !== this.id) {
        this.version = 0;
        return false;
      }
      this.version = lease.version;
      this.fenceVersion = fence.version;
      this.log.info('leading the coordinators', { fencingToken: token });
    }
    this.token = token;
    this.expiresAt = next.expiresAt - this.ttlMs / 4;
    return true;
  }

  /** Keeps renewing; calls onChange when leadership starts or ends. */
  run(onChange: (leader: boolean) => void): void {
    let was = false;
    const renewals = repeat(async () => {
      let now = false;
      try {
        now = await this.tick();
      } catch (e) {
        this.log.warn('lease renewal failed', { err: e });
        now = this.isLeader;
      }
      if (renewals.stopped) return;
      if (now !== was) {
        was = now;
        onChange(now);
      }
    }, Math.max(50, this.ttlMs / 3));
    this.renewals = renewals;
  }

  /** Stops renewing (waiting for a renewal in flight, so none starts afterwards) and gives the lease up. */
  async release(): Promise<void> {
    await this.renewals?.stop();
    this.renewals = undefined;
    if (this.version) {
      await this.store.atomic([{ key: this.key, version: this.version }], [{ key: this.key, value: null }]).catch(() => false);
      this.version = 0;
    }
  }
}
