import { FedmmError } from '@fedmm/core';
import type { events as eventsPb } from '@fedmm/proto';

type RoundEvent = eventsPb.RoundEvent;

/** One client's subscription: the events of its tasks, in arrival order, with a bounded backlog. */
export class RoundEventSubscription implements AsyncIterable<RoundEvent> {
  readonly #queue: RoundEvent[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  #error: FedmmError | undefined;

  constructor(readonly tenant: string, readonly taskIds: ReadonlySet<string>, private readonly limit: number, private readonly onClose: () => void) {}

  /** Queues an event; a subscriber that fell too far behind is ended with RESOURCE_EXHAUSTED. */
  offer(event: RoundEvent): void {
    if (this.#ended) return;
    if (this.#queue.length >= this.limit) {
      this.fail(new FedmmError('RESOURCE_EXHAUSTED', `the subscriber of tenant ${this.tenant} fell ${this.limit} round events behind; read faster and subscribe again`));
      return;
    }
    this.#queue.push(event);
    this.#signal();
  }

  /** Ends the stream after the queued events. */
  end(): void {
    this.#ended = true;
    this.#signal();
  }

  fail(error: FedmmError): void {
    this.#error ??= error;
    this.#ended = true;
    this.#signal();
  }

  close(): void {
    this.#ended = true;
    this.#queue.length = 0;
    this.onClose();
    this.#signal();
  }

  #signal(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<RoundEvent> {
    try {
      for (;;) {
        const next = this.#queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (this.#error) throw this.#error;
        if (this.#ended) return;
        await new Promise<void>((r) => (this.#wake = r));
      }
    } finally {
      this.close();
    }
  }
}

/** Fans round events out to the subscriptions of this gateway, each filtered to its tasks. */
export class RoundEventHub {
  readonly #subs = new Set<RoundEventSubscription>();
  #closed = false;

  constructor(private readonly queueLimit: number) {}

  subscribe(tenant: string, taskIds: Iterable<string>): RoundEventSubscription {
    if (this.#closed) throw new FedmmError('UNAVAILABLE', 'the gateway is shutting down; subscribe again in a moment');
    const sub: RoundEventSubscription = new RoundEventSubscription(tenant, new Set(taskIds), this.queueLimit, () => this.#subs.delete(sub));
    this.#subs.add(sub);
    return sub;
  }

  /** Delivers one event to every subscription of its task. */
  deliver(event: RoundEvent): number {
    let n = 0;
    for (const s of this.#subs) {
      if (s.taskIds.has(event.taskId)) {
        s.offer(event);
        n++;
      }
    }
    return n;
  }

  get subscriberCount(): number {
    return this.#subs.size;
  }

  /** Ends every subscription cleanly (shutdown). */
  close(): void {
    this.#closed = true;
    for (const s of [...this.#subs]) s.end();
  }
}
