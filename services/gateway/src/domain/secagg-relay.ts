import { FedmmError, sleep } from '@fedmm/core';
import { storeKey, type Store } from '@fedmm/store';
import { relayInboxParts, relayKeyParts, SECAGG_SERVER_PARTY, type RelayEntry } from '@fedmm/secagg';

/** A secure-aggregation message between two clients of one round. */
export interface RelayMessage {
  readonly from: string;
  readonly to: string;
  readonly stage: number;
  readonly payload: Uint8Array;
}

const MAX_PAYLOAD_BYTES = 1024 * 1024;

/**
 * Relays secure-aggregation messages through the store, so that any gateway replica can deliver
 * them: one entry per (task, round, stage, recipient, sender); a resend replaces the entry. The
 * coordinator is a party too (SECAGG_SERVER_PARTY): it writes its requests into the same layout
 * and reads the responses addressed to it (see @fedmm/secagg wire.ts).
 */
export class SecAggRelay {
  readonly #waiters = new Set<() => void>();

  constructor(private readonly store: Store, private readonly pollMs = 200) {}

  /** Stores messages from `sender` to other selected clients of the round. */
  async send(taskId: string, round: number, stage: number, sender: string, selected: readonly string[], messages: readonly RelayMessage[]): Promise<void> {
    const allowed = new Set(selected);
    for (const m of messages) {
      if (m.from !== '' && m.from !== sender) throw new FedmmError('PERMISSION_DENIED', `a message claims to be from ${m.from} but the caller is ${sender}; send only your own messages`);
      if (m.stage !== 0 && m.stage !== stage) throw new FedmmError('INVALID_ARGUMENT', `a message is for stage ${m.stage} inside a request for stage ${stage}`);
      if (!allowed.has(m.to) && m.to !== SECAGG_SERVER_PARTY) throw new FedmmError('INVALID_ARGUMENT', `recipient ${JSON.stringify(m.to)} is not a selected client of round ${round} of task ${taskId}`);
      if (m.to === sender) throw new FedmmError('INVALID_ARGUMENT', 'a client does not send secure-aggregation messages to itself');
      if (m.payload.byteLength > MAX_PAYLOAD_BYTES) throw new FedmmError('INVALID_ARGUMENT', `a message of ${m.payload.byteLength} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
    }
    for (const m of messages) {
      const stored: RelayEntry = { from: sender, to: m.to, stage, payload: Buffer.from(m.payload).toString('base64') };
      await this.store.put(storeKey(...relayKeyParts(taskId, round, stage, m.to, sender)), JSON.stringify(stored));
    }
    for (const w of [...this.#waiters]) w();
  }

  /**
   * Messages addressed to `recipient` at this stage. Waits up to `waitMs` until every other
   * selected client has sent one, or the coordinator has (its request is the whole stage for a
   * client of a server-driven round); then `stageComplete`. Returns what arrived by then.
   */
  async receive(taskId: string, round: number, stage: number, recipient: string, selected: readonly string[], waitMs: number, signal?: AbortSignal): Promise<{ messages: RelayMessage[]; stageComplete: boolean }> {
    const expected = new Set(selected.filter((s) => s !== recipient));
    const deadline = Date.now() + waitMs;
    for (;;) {
      const entries = await this.store.list(storeKey(...relayInboxParts(taskId, round, stage, recipient)));
      const messages = entries.map((e) => {
        const m = JSON.parse(e.value) as RelayEntry;
        return { from: m.from, to: m.to, stage: m.stage, payload: Buffer.from(m.payload, 'base64') };
      });
      const stageComplete = messages.some((m) => m.from === SECAGG_SERVER_PARTY) || [...expected].every((s) => messages.some((m) => m.from === s));
      const left = deadline - Date.now();
      if (stageComplete || left <= 0 || signal?.aborted) return { messages, stageComplete };
      await this.#wait(Math.min(left, this.pollMs), signal);
    }
  }

  async #wait(ms: number, signal?: AbortSignal): Promise<void> {
    let wake!: () => void;
    const woken = new Promise<void>((r) => (wake = r));
    this.#waiters.add(wake);
    try {
      await Promise.race([sleep(ms, signal).catch(() => undefined), woken]);
    } finally {
      this.#waiters.delete(wake);
    }
  }
}
