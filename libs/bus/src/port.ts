/** The bus port: topics of keyed messages, consumer groups, at-least-once delivery, manual commit. */

export type Headers = Record<string, string>;

export interface OutgoingMessage {
  key: string;
  value: Uint8Array;
  headers?: Headers;
}

export interface BusMessage {
  topic: string;
  partition: number;
  /** Offset within the partition, as a decimal string (Kafka offsets are 64-bit). */
  offset: string;
  key: string;
  value: Buffer;
  headers: Headers;
  timestampMs: number;
}

export interface TopicSpec {
  partitions: number;
  /** Largest message the topic accepts, in bytes (Kafka's max.message.bytes). */
  maxMessageBytes?: number;
}

export interface PartitionOffset {
  topic: string;
  partition: number;
  /** The next offset to read (Kafka commit convention: last processed + 1). */
  offset: string;
}

export interface SubscribeOptions {
  group: string;
  topics: string[];
  /** Where a group with no committed offset starts. Default: earliest. */
  fromBeginning?: boolean;
  /** Called once per message, in offset order within a partition. A throw stops the consumer. */
  handler: (msg: BusMessage, consumer: Consumer) => Promise<void>;
  /** Called when the group gives this member partitions, and when it takes them away. */
  onAssign?: (partitions: { topic: string; partition: number }[], consumer: Consumer) => void | Promise<void>;
  onRevoke?: (partitions: { topic: string; partition: number }[]) => void | Promise<void>;
}

export interface Consumer {
  readonly group: string;
  /** Commits offsets: each is the next offset to read for its partition. */
  commit(offsets: PartitionOffset[]): Promise<void>;
  /** Commits the offset just after msg. */
  commitMessage(msg: BusMessage): Promise<void>;
  /** Partitions this member owns now. */
  assignment(): { topic: string; partition: number }[];
  /** Moves this member's read position in a partition it owns (the next message delivered is at offset). */
  seek(topic: string, partition: number, offset: string): void;
  /** Leaves the group; uncommitted messages go to the next owner. */
  stop(): Promise<void>;
}

export interface Bus {
  readonly kind: 'kafka' | 'embedded';
  ensureTopic(topic: string, spec: TopicSpec): Promise<void>;
  /** Publishes messages; resolves only when the bus has durably accepted all of them. */
  publish(topic: string, messages: OutgoingMessage[]): Promise<PartitionOffset[]>;
  subscribe(opts: SubscribeOptions): Promise<Consumer>;
  /** Committed offsets of a group (the next offset to read per partition). */
  committedOffsets(group: string, topic: string): Promise<PartitionOffset[]>;
  /** The current end offset (next offset to be written) of each partition. */
  endOffsets(topic: string): Promise<PartitionOffset[]>;
  partitionFor(topic: string, key: string): Promise<number>;
  close(): Promise<void>;
}

/** Standard topic names (see docs/ARCHITECTURE.md). */
export const Topics = Object.freeze({
  roundEvents: 'fedmm.round-events',
  updates: 'fedmm.updates',
  shardResults: 'fedmm.shard-results',
  audit: 'fedmm.audit',
});
