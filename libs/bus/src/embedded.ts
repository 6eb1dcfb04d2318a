import { EventEmitter } from 'node:events';
import { FedmmError } from '@fedmm/core';
import type { Bus, BusMessage, Consumer, OutgoingMessage, PartitionOffset, SubscribeOptions, TopicSpec } from './port.js';
import { defaultPartition } from './partitioner.js';
import { injectTraceHeaders, withConsumerSpan, withProducerSpan } from './trace.js';

interface Topic {
  partitions: BusMessage[][];
  maxMessageBytes: number;
}

interface Member {
  id: number;
  opts: SubscribeOptions;
  consumer: EmbeddedConsumer;
  assigned: { topic: string; partition: number }[];
  positions: Map<string, number>;
  generation: number;
  stopped: boolean;
}

interface Group {
  members: Member[];
  committed: Map<string, number>;
}

const pkey = (topic: string, partition: number): string => `${topic}#${partition}`;

/**
 * An in-process bus with Kafka's semantics where they matter to fedmm: keyed partitions, consumer
 * groups that split partitions and rebalance, manual commits, redelivery of uncommitted messages.
 * Messages live in memory for the life of the process.
 */
export class EmbeddedBus implements Bus {
  readonly kind = 'embedded' as const;
  private readonly topics = new Map<string, Topic>();
  private readonly groups = new Map<string, Group>();
  private readonly wake = new EventEmitter();
  private nextMemberId = 1;
  private closed = false;

  constructor(private readonly defaults: { partitions: number; maxMessageBytes: number } = { partitions: 8, maxMessageBytes: 2 * 1024 * 1024 }) {
    this.wake.setMaxListeners(0);
  }

  private topic(name: string): Topic {
    let t = this.topics.get(name);
    if (!t) {
      t = { partitions: Array.from({ length: this.defaults.partitions }, () => []), maxMessageBytes: this.defaults.maxMessageBytes };
      this.topics.set(name, t);
    }
    return t;
  }

  async ensureTopic(topic: string, spec: TopicSpec): Promise<void> {
    const t = this.topics.get(topic);
    if (!t) {
      this.topics.set(topic, { partitions: Array.from({ length: spec.partitions }, () => []), maxMessageBytes: spec.maxMessageBytes ?? this.defaults.maxMessageBytes });
      return;
    }
    while (t.partitions.length < spec.partitions) t.partitions.push([]);
    if (spec.maxMessageBytes) t.maxMessageBytes = Math.max(t.maxMessageBytes, spec.maxMessageBytes);
  }

  async partitionFor(topic: string, key: string): Promise<number> {
    return defaultPartition(key, this.topic(topic).partitions.length);
  }

  async publish(topic: string, messages: OutgoingMessage[]): Promise<PartitionOffset[]> {
    this.assertOpen();
    return withProducerSpan(topic, messages.length, async () => {
      const t = this.topic(topic);
      const out: PartitionOffset[] = [];
      for (const m of messages) {
        const size = m.value.byteLength + Buffer.byteLength(m.key) + Object.entries(m.headers ?? {}).reduce((s, [k, v]) => s + k.length + v.length, 0);
        if (size > t.maxMessageBytes) {
          throw new FedmmError('INVALID_ARGUMENT', `message of ${size} bytes exceeds the ${t.maxMessageBytes}-byte limit of topic ${topic}; send smaller chunks`);
        }
      }
      for (const m of messages) {
        const partition = defaultPartition(m.key, t.partitions.length);
        const log = t.partitions[partition]!;
        const msg: BusMessage = {
          topic,
          partition,
          offset: String(log.length),
          key: m.key,
          value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength),
          headers: injectTraceHeaders(m.headers),
          timestampMs: Date.now(),
        };
        log.push(msg);
        out.push({ topic, partition, offset: msg.offset });
      }
      this.wake.emit('data');
      return out;
    });
  }

  async subscribe(opts: SubscribeOptions): Promise<Consumer> {
    this.assertOpen();
    for (const t of opts.topics) this.topic(t);
    let group = this.groups.get(opts.group);
    if (!group) {
      group = { members: [], committed: new Map() };
      this.groups.set(opts.group, group);
    }
    const member: Member = { id: this.nextMemberId++, opts, assigned: [], positions: new Map(), generation: 0, stopped: false, consumer: undefined as unknown as EmbeddedConsumer };
    member.consumer = new EmbeddedConsumer(this, opts.group, member);
    group.members.push(member);
    await this.rebalance(group);
    void this.loop(group, member);
    return member.consumer;
  }

  /** @internal */
  async leave(groupName: string, member: Member): Promise<void> {
    const group = this.groups.get(groupName);
    if (!group || member.stopped) return;
    member.stopped = true;
    group.members = group.members.filter((m) => m !== member);
    this.wake.emit('data');
    await this.rebalance(group);
  }

  /** @internal */
  commitOffsets(groupName: string, offsets: PartitionOffset[]): void {
    const group = this.groups.get(groupName);
    if (!group) throw new FedmmError('FAILED_PRECONDITION', `consumer group ${groupName} does not exist`);
    for (const o of offsets) group.committed.set(pkey(o.topic, o.partition), Number(o.offset));
  }

  private async rebalance(group: Group): Promise<void> {
    const all: { topic: string; partition: number }[] = [];
    const topics = [...new Set(group.members.flatMap((m) => m.opts.topics))].sort();
    for (const t of topics) this.topic(t).partitions.forEach((_, p) => all.push({ topic: t, partition: p }));
    const members = [...group.members].sort((a, b) => a.id - b.id);
    const next = new Map<Member, { topic: string; partition: number }[]>(members.map((m) => [m, []]));
    all.forEach((tp, i) => {
      const eligible = members.filter((m) => m.opts.topics.includes(tp.topic));
      if (eligible.length > 0) next.get(eligible[i % eligible.length]!)!.push(tp);
    });
    for (const m of members) {
      if (m.assigned.length > 0) await m.opts.onRevoke?.(m.assigned);
      m.assigned = next.get(m)!;
      m.generation++;
      m.positions.clear();
      for (const tp of m.assigned) {
        const committed = group.committed.get(pkey(tp.topic, tp.partition));
        const start = committed ?? (m.opts.fromBeginning === false ? this.topic(tp.topic).partitions[tp.partition]!.length : 0);
        m.positions.set(pkey(tp.topic, tp.partition), start);
      }
      if (m.assigned.length > 0) await m.opts.onAssign?.(m.assigned, m.consumer);
    }
    this.wake.emit('data');
  }

  private async loop(_group: Group, member: Member): Promise<void> {
    while (!member.stopped && !this.closed) {
      let delivered = false;
      const gen = member.generation;
      for (const tp of member.assigned) {
        if (member.stopped || gen !== member.generation) break;
        const k = pkey(tp.topic, tp.partition);
        const pos = member.positions.get(k) ?? 0;
        const log = this.topic(tp.topic).partitions[tp.partition]!;
        if (pos < log.length) {
          const msg = log[pos]!;
          member.positions.set(k, pos + 1);
          delivered = true;
          try {
            await withConsumerSpan(msg.topic, msg.headers, () => member.opts.handler(msg, member.consumer));
          } catch {
            // A failing handler stops this member, as a crashed consumer would; its partitions move on.
            await this.leave(member.consumer.group, member);
            return;
          }
        }
      }
      if (!delivered) await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        this.wake.once('data', () => { clearTimeout(t); r(); });
      });
    }
  }

  async committedOffsets(group: string, topic: string): Promise<PartitionOffset[]> {
    const g = this.groups.get(group);
    return this.topic(topic).partitions.map((_, p) => ({ topic, partition: p, offset: String(g?.committed.get(pkey(topic, p)) ?? -1) }));
  }

  async endOffsets(topic: string): Promise<PartitionOffset[]> {
    return this.topic(topic).partitions.map((log, p) => ({ topic, partition: p, offset: String(log.length) }));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const g of this.groups.values()) for (const m of g.members) m.stopped = true;
    this.wake.emit('data');
  }

  private assertOpen(): void {
    if (this.closed) throw new FedmmError('UNAVAILABLE', 'the embedded bus is closed');
  }
}

class EmbeddedConsumer implements Consumer {
  constructor(private readonly bus: EmbeddedBus, readonly group: string, private readonly member: Member) {}
  async commit(offsets: PartitionOffset[]): Promise<void> {
    this.bus.commitOffsets(this.group, offsets);
  }
  async commitMessage(msg: BusMessage): Promise<void> {
    this.bus.commitOffsets(this.group, [{ topic: msg.topic, partition: msg.partition, offset: String(Number(msg.offset) + 1) }]);
  }
  assignment(): { topic: string; partition: number }[] {
    return [...this.member.assigned];
  }
  seek(topic: string, partition: number, offset: string): void {
    if (!this.member.assigned.some((a) => a.topic === topic && a.partition === partition)) {
      throw new FedmmError('FAILED_PRECONDITION', `partition ${topic}#${partition} is not assigned to this member`);
    }
    this.member.positions.set(`${topic}#${partition}`, Number(offset));
  }
  async stop(): Promise<void> {
    await this.bus.leave(this.group, this.member);
  }
}
