import type { Logger } from '@fedmm/core';
import { Topics, type Bus, type BusMessage, type Consumer } from '@fedmm/bus';
import { CHUNK_HEADERS, decodeBf16, decodeF16, decodeUpdateChunk, decodeVerdict, dequantizeInt8, recordKind, type DecodedUpdateChunk } from '@fedmm/tensor';
import type { UpdateFiles, UpdatePiece } from './update-files.js';

export interface UpdateCollectorOptions {
  readonly bus: Bus;
  readonly files: UpdateFiles;
  readonly log: Logger;
  readonly group: string;
  readonly topic?: string;
  /**
   * Whether the service may keep this round's individual updates: false for tasks under secure
   * aggregation (their chunks are dropped unread) and for rounds already scored (a replay).
   */
  readonly mayKeep: (task: string, round: number) => Promise<boolean>;
}

interface Pending {
  /** Offset of the first chunk waiting in this partition: the consumer may not commit past it. */
  readonly firstOffset: bigint;
  readonly partition: number;
  readonly pieces: Map<number, UpdatePiece>;
}

/**
 * Consumes fedmm.updates in the valuation service's own consumer group and keeps each accepted
 * upload on disk. Chunks wait in memory until the gateway's verdict for their shard arrives (a few
 * records later in the same partition); an accept writes them, a reject drops them. Offsets are
 * committed only up to the oldest chunk still waiting, so a restart replays what was not written.
 */
export class UpdateCollector {
  readonly #o: UpdateCollectorOptions;
  /** `${task}/${round}/${client}/${sha}/${shard}` -> chunks by seq. */
  readonly #pending = new Map<string, Pending>();
  #consumer: Consumer | undefined;

  constructor(options: UpdateCollectorOptions) {
    this.#o = options;
  }

  async start(): Promise<void> {
    const topic = this.#o.topic ?? Topics.updates;
    await this.#o.bus.ensureTopic(topic, { partitions: 8, maxMessageBytes: 2 * 1024 * 1024 }).catch(() => undefined);
    this.#consumer = await this.#o.bus.subscribe({
      group: this.#o.group,
      topics: [topic],
      fromBeginning: true,
      handler: (msg, consumer) => this.#onRecord(msg, consumer),
      onRevoke: () => {
        // The next owner replays from the committed offset, which never passes a waiting chunk.
        this.#pending.clear();
      },
    });
  }

  async stop(): Promise<void> {
    await this.#consumer?.stop();
    this.#consumer = undefined;
  }

  async #onRecord(msg: BusMessage, consumer: Consumer): Promise<void> {
    try {
      if (recordKind(msg.headers) === 'verdict') await this.#onVerdict(msg);
      else await this.#onChunk(msg);
    } catch (e) {
      // A malformed record is skipped, never fatal: the gateway validated what it produced.
      this.#o.log.warn('skipping an update record', { partition: msg.partition, offset: msg.offset, err: e });
    }
    const waiting = [...this.#pending.values()].filter((p) => p.partition === msg.partition).map((p) => p.firstOffset);
    const next = waiting.length > 0 ? waiting.reduce((a, b) => (a < b ? a : b)) : BigInt(msg.offset) + 1n;
    await consumer.commit([{ topic: msg.topic, partition: msg.partition, offset: next.toString() }]);
  }

  async #onChunk(msg: BusMessage): Promise<void> {
    // Decide from the headers alone, so that values of a secure task are never even decoded.
    const task = msg.headers[CHUNK_HEADERS.task];
    const round = Number(msg.headers[CHUNK_HEADERS.round]);
    if (task === undefined || !Number.isSafeInteger(round) || !(await this.#o.mayKeep(task, round))) return;
    const c = decodeUpdateChunk(msg.headers, msg.value, { requireFinite: true });
    const key = `${c.task}/${c.round}/${c.client}/${c.updateSha256 ?? ''}/${c.shard}`;
    let p = this.#pending.get(key);
    if (!p) this.#pending.set(key, (p = { firstOffset: BigInt(msg.offset), partition: msg.partition, pieces: new Map() }));
    // A duplicate (same client, round, shard, seq) replaces itself: counted once.
    p.pieces.set(c.seq, { elementOffset: c.elementOffset, values: toFloat32(c) });
  }

  async #onVerdict(msg: BusMessage): Promise<void> {
    const v = decodeVerdict(msg.headers);
    const key = `${v.task}/${v.round}/${v.client}/${v.updateSha256}/${v.shard}`;
    const p = this.#pending.get(key);
    this.#pending.delete(key);
    if (!v.accept || !p) return;
    if (p.pieces.size !== v.seqCount) {
      this.#o.log.warn('an accepted upload is missing chunks; valuation leaves that shard out', { task: v.task, round: v.round, client: v.client, shard: v.shard, have: p.pieces.size, want: v.seqCount });
      return;
    }
    const pieces = [...p.pieces.entries()].sort(([a], [b]) => a - b).map(([, piece]) => piece);
    await this.#o.files.writeShard(
      { task: v.task, round: v.round, attempt: v.attempt, client: v.client, sha256: v.updateSha256, numExamples: v.numExamples },
      v.shard,
      pieces,
    );
  }
}

function toFloat32(c: DecodedUpdateChunk): Float32Array {
  switch (c.dtype) {
    case 'F32':
      // Copy: the record's buffer is reused by the client library once the handler returns.
      return Float32Array.from(c.values as Float32Array);
    case 'F16':
      return decodeF16(c.values as Uint16Array);
    case 'BF16':
      return decodeBf16(c.values as Uint16Array);
    case 'I8':
      return dequantizeInt8(c.values as Int8Array, c.scale ?? 1);
  }
}
