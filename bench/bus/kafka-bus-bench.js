#!/usr/bin/env node
// Throughput of fedmm's Kafka bus adapter with 1 MiB messages, next to Kafka's own
// ProducerPerformance / ConsumerPerformance run from the same jars in the same run.
//
//   make bench            (or: node bench/bus/kafka-bus-bench.js after make build services-up)
//
// Environment: BENCH_RECORDS (default 512), BENCH_RECORD_BYTES (default 1048576),
// FEDMM_KAFKA_BROKERS (default 127.0.0.1:9092).
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KafkaBus } from '../../libs/bus/dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const records = Number(process.env.BENCH_RECORDS ?? 512);
const recordBytes = Number(process.env.BENCH_RECORD_BYTES ?? 1048576);
const brokers = (process.env.FEDMM_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const MiB = 1048576;

async function fedmmRun() {
  const bus = new KafkaBus({ brokers, clientId: 'bench', maxMessageBytes: recordBytes + 65536 });
  const topic = `fedmm.bench.bus.${randomUUID().slice(0, 8)}`;
  await bus.ensureTopic(topic, { partitions: 8, maxMessageBytes: recordBytes * 2 });
  const payload = randomBytes(recordBytes);
  // The gateway publishes one record per shard chunk and waits for acks=all: batches of 8 keep 8 partitions busy.
  const batch = 8;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < records; i += batch) {
    const msgs = [];
    for (let j = i; j < Math.min(records, i + batch); j++) msgs.push({ key: `1/${j}`, value: payload, headers: { 'fedmm-seq': String(j) } });
    await bus.publish(topic, msgs);
  }
  const produceS = Number(process.hrtime.bigint() - t0) / 1e9;
  let got = 0;
  let bytes = 0;
  const t1 = process.hrtime.bigint();
  let t1End = t1;
  await new Promise((resolve) => {
    void bus.subscribe({
      group: `bench-${randomUUID().slice(0, 8)}`,
      topics: [topic],
      fromBeginning: true,
      handler: async (m) => {
        got++;
        bytes += m.value.byteLength;
        if (got === records) {
          t1End = process.hrtime.bigint();
          resolve();
        }
      },
    });
  });
  // Consumer time includes the group join, as a consumer of a round would see it.
  const consumeS = Number(t1End - t1) / 1e9;
  await bus.close();
  return { produce: (records * recordBytes) / MiB / produceS, consume: bytes / MiB / consumeS };
}

function nativeRun() {
  const out = execFileSync('bash', [join(here, '../kafka/kafka-perf.sh')], {
    env: { ...process.env, KAFKA_PERF_RECORDS: String(records), KAFKA_PERF_RECORD_BYTES: String(recordBytes) },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const num = (k) => Number(new RegExp(`${k}=([0-9.]+)`).exec(out)?.[1]);
  return { produce: num('produce_mb_s'), consume: num('consume_mb_s') };
}

const fedmm = await fedmmRun();
const native = nativeRun();
const f = (x) => x.toFixed(1).padStart(8);
console.log(`records=${records} record_bytes=${recordBytes} partitions=8 acks=all`);
console.log(`                     produce MiB/s  consume MiB/s`);
console.log(`fedmm bus (kafkajs)  ${f(fedmm.produce)}       ${f(fedmm.consume)}`);
console.log(`kafka perf tools     ${f(native.produce)}       ${f(native.consume)}`);
console.log(`ratio fedmm/native   ${f(fedmm.produce / native.produce)}       ${f(fedmm.consume / native.consume)}`);
