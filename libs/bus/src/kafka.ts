import { Kafka, logLevel, CompressionTypes, Partitioners, type Admin, type Producer, type Consumer as KConsumer, type SASLOptions, type KafkaMessage } from 'kafkajs';
import { FedmmError, createLogger, type Logger } from '@fedmm/core';
import type { Bus, BusMessage, Consumer, Headers, OutgoingMessage, PartitionOffset, SubscribeOptions, TopicSpec } from './port.js';
import { defaultPartition } from './partitioner.js';
import { injectTraceHeaders, withConsumerSpan, withProducerSpan } from './trace.js';

export interface KafkaBusOptions {
  brokers: string[];
  clientId: string;
  ssl?: boolean;
  sasl?: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string };
  /** How long the broker waits before it declares a silent consumer dead and rebalances. */
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /** Largest message the producer may send; defaults to 2 MiB. */
  maxMessageBytes?: number;
  /**
   * Most bytes one produce request puts into one partition. Kafka limits a record *batch* (all
   * messages of a request for one partition) to max.message.bytes, so large messages that share a
   * partition go in separate requests. Default 1 MiB.
   */
  maxBatchBytes?: number;
  logger?: Logger;
}

function toHeaders(h: KafkaMessage['headers']): Headers {
  const out: Headers = {};
  if (!h) return out;
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    const one = Array.isArray(v) ? v[0] : v;
    if (one !== undefined) out[k] = Buffer.isBuffer(one) ? one.toString('utf8') : String(one);
  }
  return out;
}

/** The bus on Apache Kafka (kafkajs): idempotent producer with acks=all, manual commits. */
export class KafkaBus implements Bus {
  readonly kind = 'kafka' as const;
  private readonly kafka: Kafka;
  private producer: Producer | undefined;
  private producerReady: Promise<Producer> | undefined;
  private admin: Admin | undefined;
  private readonly consumers = new Set<KafkaConsumerHandle>();
  private readonly partitionCounts = new Map<string, number>();
  private readonly log: Logger;

  constructor(private readonly opts: KafkaBusOptions) {
    this.log = opts.logger ?? createLogger({ component: 'kafka-bus' });
    const sasl: SASLOptions | undefined = opts.sasl
      ? ({ mechanism: opts.sasl.mechanism, username: opts.sasl.username, password: opts.sasl.password })
      : undefined;
    this.kafka = new Kafka({
      clientId: opts.clientId,
      brokers: opts.brokers,
      ...(opts.ssl ? { ssl: true } : {}),
      ...(sasl ? { sasl } : {}),
      connectionTimeout: 5000,
      requestTimeout: 30000,
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5000 },
      logLevel: logLevel.WARN,
      logCreator: () => ({ namespace, level, log }) => {
        const { message, ...rest } = log;
        // Rebalances are routine: kafkajs reports them as errors, fedmm as debug.
        if (/rebalanc|rejoin|EoS guarantees/i.test(message + String(rest['error'] ?? ''))) return this.log.debug(`kafka: ${message}`, { namespace });
        if (level <= logLevel.ERROR) this.log.error(`kafka: ${message}`, { namespace, ...rest });
        else if (level <= logLevel.WARN) this.log.warn(`kafka: ${message}`, { namespace, ...rest });
      },
    });
  }

  private async getAdmin(): Promise<Admin> {
    if (!this.admin) {
      const admin = this.kafka.admin();
      await admin.connect();
      this.admin = admin;
    }
    return this.admin;
  }

  private getProducer(): Promise<Producer> {
    if (!this.producerReady) {
      const producer = this.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: true });
      this.producerReady = producer.connect().then(() => {
        this.producer = producer;
        return producer;
      }, (e: unknown) => {
        this.producerReady = undefined;
        throw new FedmmError('UNAVAILABLE', `cannot connect to Kafka at ${this.opts.brokers.join(',')}: ${(e as Error).message}`);
      });
    }
    return this.producerReady;
  }

  async ensureTopic(topic: string, spec: TopicSpec): Promise<void> {
    const admin = await this.getAdmin();
    const configEntries = spec.maxMessageBytes ? [{ name: 'max.message.bytes', value: String(spec.maxMessageBytes) }] : [];
    const existing = await admin.fetchTopicMetadata({ topics: [] }).then((m) => m.topics.find((t) => t.name === topic));
    if (!existing) {
      try {
        await admin.createTopics({ waitForLeaders: false, topics: [{ topic, numPartitions: spec.partitions, configEntries }] });
      } catch (e) {
        if (!/already exists/i.test((e as Error).message)) throw e;
      }
    } else if (existing.partitions.length < spec.partitions) {
      await admin.createPartitions({ topicPartitions: [{ topic, count: spec.partitions }] });
    }
    await this.waitForLeaders(admin, topic, spec.partitions);
    this.partitionCounts.delete(topic);
  }

  /**
   * Waits until every partition of a new topic has a leader. A broker that has just started (or
   * just created the topic) may answer metadata with UNKNOWN_TOPIC_OR_PARTITION or
   * LEADER_NOT_AVAILABLE for a moment; kafkajs's own wait retries only the latter.
   */
  private async waitForLeaders(admin: Admin, topic: string, partitions: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no metadata yet';
    for (;;) {
      try {
        const md = await admin.fetchTopicMetadata({ topics: [topic] });
        const parts = md.topics[0]?.partitions ?? [];
        if (parts.length >= partitions && parts.every((p) => p.leader >= 0)) return;
        last = `${parts.filter((p) => p.leader >= 0).length} of ${partitions} partitions have a leader`;
      } catch (e) {
        const type = (e as { type?: string }).type;
        if (type !== 'UNKNOWN_TOPIC_OR_PARTITION' && type !== 'LEADER_NOT_AVAILABLE') throw e;
        last = (e as Error).message;
      }
      if (Date.now() >= deadline) {
        throw new FedmmError('UNAVAILABLE', `topic ${topic} has no leader for every partition after ${timeoutMs / 1000}s (${last}); check that the Kafka brokers are healthy`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async partitionFor(topic: string, key: string): Promise<number> {
    return defaultPartition(key, await this.partitionCount(topic));
  }

  private async partitionCount(topic: string): Promise<number> {
    let n = this.partitionCounts.get(topic);
    if (n === undefined) {
      const admin = await this.getAdmin();
      const md = await admin.fetchTopicMetadata({ topics: [topic] });
      n = md.topics[0]?.partitions.length ?? 0;
      if (n === 0) throw new FedmmError('NOT_FOUND', `topic ${topic} has no partitions; create it first`);
      this.partitionCounts.set(topic, n);
    }
    return n;
  }

  async publish(topic: string, messages: OutgoingMessage[]): Promise<PartitionOffset[]> {
    if (messages.length === 0) return [];
    return withProducerSpan(topic, messages.length, async () => {
      const producer = await this.getProducer();
      const partitions = await this.partitionCount(topic).catch(() => 0);
      const out: PartitionOffset[] = [];
      // kafkajs's default partitioner for keyed messages is murmur2 as in Java, so keys map the same way.
      for (const group of splitByPartitionBytes(messages, partitions, this.opts.maxBatchBytes ?? 1024 * 1024)) {
        const res = await producer.send({
          topic,
          acks: -1,
          compression: CompressionTypes.None,
          messages: group.map((m) => ({
            key: m.key,
            value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength),
            headers: injectTraceHeaders(m.headers),
          })),
        });
        for (const r of res) out.push({ topic: r.topicName, partition: r.partition, offset: String(r.baseOffset ?? r.offset ?? '0') });
      }
      return out;
    });
  }

  async subscribe(opts: SubscribeOptions): Promise<Consumer> {
    const consumer = this.kafka.consumer({
      groupId: opts.group,
      sessionTimeout: this.opts.sessionTimeoutMs ?? 10_000,
      heartbeatInterval: this.opts.heartbeatIntervalMs ?? 1_000,
      rebalanceTimeout: 20_000,
      maxBytesPerPartition: Math.max(this.opts.maxMessageBytes ?? 2 * 1024 * 1024, 1024 * 1024) + 64 * 1024,
      allowAutoTopicCreation: true,
    });
    const handle = new KafkaConsumerHandle(opts.group, consumer);
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      const assigned: { topic: string; partition: number }[] = [];
      for (const [topic, parts] of Object.entries(e.payload.memberAssignment)) for (const p of parts) assigned.push({ topic, partition: p });
      const previous = handle.assigned;
      handle.assigned = assigned;
      void (async () => {
        if (previous.length > 0) await opts.onRevoke?.(previous);
        if (assigned.length > 0) await opts.onAssign?.(assigned, handle);
      })().catch((err: unknown) => this.log.error('partition assignment hook failed', { err }));
    });
    consumer.on(consumer.events.CRASH, (e) => this.log.warn('consumer crashed', { group: opts.group, error: e.payload.error.message, restart: e.payload.restart }));
    await consumer.connect();
    await consumer.subscribe({ topics: opts.topics, fromBeginning: opts.fromBeginning ?? true });
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 1,
      eachMessage: async ({ topic, partition, message }) => {
        const msg: BusMessage = {
          topic,
          partition,
          offset: message.offset,
          key: message.key?.toString('utf8') ?? '',
          value: message.value ?? Buffer.alloc(0),
          headers: toHeaders(message.headers),
          timestampMs: Number(message.timestamp),
        };
        await withConsumerSpan(topic, msg.headers, () => opts.handler(msg, handle));
      },
    });
    this.consumers.add(handle);
    handle.onStop = () => this.consumers.delete(handle);
    return handle;
  }

  async committedOffsets(group: string, topic: string): Promise<PartitionOffset[]> {
    const admin = await this.getAdmin();
    const res = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return (res[0]?.partitions ?? []).map((p) => ({ topic, partition: p.partition, offset: p.offset })).sort((a, b) => a.partition - b.partition);
  }

  async endOffsets(topic: string): Promise<PartitionOffset[]> {
    const admin = await this.getAdmin();
    const res = await admin.fetchTopicOffsets(topic);
    return res.map((p) => ({ topic, partition: p.partition, offset: p.high })).sort((a, b) => a.partition - b.partition);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.consumers].map((c) => c.stop()));
    if (this.producer) await this.producer.disconnect().catch(() => undefined);
    if (this.admin) await this.admin.disconnect().catch(() => undefined);
    this.producer = undefined;
    this.producerReady = undefined;
    this.admin = undefined;
  }
}

class KafkaConsumerHandle implements Consumer {
  assigned: { topic: string; partition: number }[] = [];
  onStop: (() => void) | undefined;
  private stopped = false;
  constructor(readonly group: string, private readonly consumer: KConsumer) {}
  async commit(offsets: PartitionOffset[]): Promise<void> {
    await this.consumer.commitOffsets(offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset })));
  }
  async commitMessage(msg: BusMessage): Promise<void> {
    await this.commit([{ topic: msg.topic, partition: msg.partition, offset: (BigInt(msg.offset) + 1n).toString() }]);
  }
  assignment(): { topic: string; partition: number }[] {
    return [...this.assigned];
  }
  seek(topic: string, partition: number, offset: string): void {
    this.consumer.seek({ topic, partition, offset });
  }
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.onStop?.();
    await this.consumer.disconnect();
  }
}

/** Splits messages into requests so that no partition receives more than maxBytes in one request (a lone larger message goes alone). */
export function splitByPartitionBytes(messages: OutgoingMessage[], partitions: number, maxBytes: number): OutgoingMessage[][] {
  if (partitions <= 0) return [messages];
  const groups: OutgoingMessage[][] = [];
  let current: OutgoingMessage[] = [];
  let perPartition = new Map<number, number>();
  for (const m of messages) {
    const p = defaultPartition(m.key, partitions);
    const size = m.value.byteLength + Buffer.byteLength(m.key) + Object.entries(m.headers ?? {}).reduce((n, [k, v]) => n + k.length + v.length, 0) + 128;
    const used = perPartition.get(p) ?? 0;
    if (used > 0 && used + size > maxBytes) {
      groups.push(current);
      current = [];
      perPartition = new Map();
    }
    current.push(m);
    perPartition.set(p, (perPartition.get(p) ?? 0) + size);
  }
  if (current.length > 0) groups.push(current);
  return groups;
}
