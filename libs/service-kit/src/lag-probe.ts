import type { Bus } from '@fedmm/bus';
import type { Logger } from '@fedmm/core';
import { Attr, fedmmMetrics } from '@fedmm/telemetry';

export interface LagProbeOptions {
  bus: Bus;
  /** The consumer group whose progress is measured. */
  group: string;
  topics: string[];
  log: Logger;
  /** Time between probes; default 10 s (KEDA polls about every 30 s). */
  intervalMs?: number;
}

export interface PartitionLag {
  topic: string;
  partition: number;
  /** Messages written to the partition and not yet committed by the group. */
  lag: number;
}

export interface LagProbe {
  /** Measures once and updates fedmm.consumer.lag; what a timer tick does. */
  probe(): Promise<PartitionLag[]>;
  stop(): Promise<void>;
}

/** Lag of a group on one topic: end offset minus committed offset per partition (no commit yet: the whole partition). */
export async function measureLag(bus: Bus, group: string, topic: string): Promise<PartitionLag[]> {
  const [ends, committed] = await Promise.all([bus.endOffsets(topic), bus.committedOffsets(group, topic)]);
  const done = new Map(committed.map((c) => [c.partition, c.offset]));
  return ends.map((e) => {
    const end = BigInt(e.offset);
    const c = done.get(e.partition);
    // Kafka reports "-1" for a partition the group never committed.
    const at = c === undefined || BigInt(c) < 0n ? 0n : BigInt(c);
    const lag = end > at ? end - at : 0n;
    return { topic, partition: e.partition, lag: Number(lag) };
  });
}

/**
 * Periodically sets the fedmm.consumer.lag gauge (labels topic, partition, group) from the bus's
 * committed and end offsets. Any consumer may run one; every member of a group reports the same
 * figures, so dashboards take the max.
 */
export function startLagProbe(opts: LagProbeOptions): LagProbe {
  const gauge = fedmmMetrics().consumerLag;
  const interval = opts.intervalMs ?? 10_000;
  let failing = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  const probe = async (): Promise<PartitionLag[]> => {
    const all: PartitionLag[] = [];
    for (const topic of opts.topics) all.push(...(await measureLag(opts.bus, opts.group, topic)));
    for (const p of all) gauge.set(p.lag, { [Attr.topic]: p.topic, [Attr.partition]: String(p.partition), group: opts.group });
    return all;
  };
  const tick = (): void => {
    running = probe().then(
      () => {
        if (failing) opts.log.info('consumer lag probe recovered', { group: opts.group });
        failing = false;
      },
      (e: unknown) => {
        // Logged once per outage: the bus being away is reported by the consumers themselves.
        if (!failing) opts.log.warn('consumer lag probe failed; retrying', { group: opts.group, err: e });
        failing = true;
      },
    ).finally(() => {
      if (!stopped) timer = setTimeout(tick, interval).unref();
    });
  };
  timer = setTimeout(tick, 0).unref();
  return {
    probe,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
