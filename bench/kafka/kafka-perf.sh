#!/usr/bin/env bash
# Kafka's own throughput on the local broker: the reference that fedmm's bus adapter is measured
# against. Runs Kafka's ProducerPerformance and ConsumerPerformance (the classes behind
# kafka-producer-perf-test.sh / kafka-consumer-perf-test.sh) from the cached Kafka jars.
#
#   bench/kafka/kafka-perf.sh
#
# Prints exactly one line for each direction (MB is Kafka's MiB, 1048576 bytes):
#   kafka-native produce_mb_s=<float> records_s=<float> records=<n> record_bytes=<n> partitions=<n> acks=<acks> avg_latency_ms=<float> p99_latency_ms=<n>
#   kafka-native consume_mb_s=<float> records_s=<float> records=<n> record_bytes=<n> partitions=<n>
#
# Environment:
#   KAFKA_PERF_RECORDS      records per direction     (default 512)
#   KAFKA_PERF_RECORD_BYTES bytes per record          (default 1048576)
#   KAFKA_PERF_PARTITIONS   partitions of the topic   (default 8)
#   KAFKA_PERF_ACKS         producer acks             (default all, as fedmm's gateway waits for Kafka)
#   FEDMM_KAFKA_BROKERS     bootstrap (default 127.0.0.1:9092, started with deploy/local/kafka.sh)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
kafka="$root/deploy/local/kafka.sh"
records="${KAFKA_PERF_RECORDS:-512}"
record_bytes="${KAFKA_PERF_RECORD_BYTES:-1048576}"
partitions="${KAFKA_PERF_PARTITIONS:-8}"
acks="${KAFKA_PERF_ACKS:-all}"
brokers="${FEDMM_KAFKA_BROKERS:-127.0.0.1:9092}"
topic="fedmm.bench.kafka-native.$(date +%s).$$"
# Room for one record plus its batch and request framing.
max_bytes=$((record_bytes * 2 + 1048576))

if [ "$brokers" = "127.0.0.1:9092" ]; then "$kafka" start; fi

# Benchmarks run on the optimising JIT with a heap that holds the producer's buffer.
export FEDMM_KAFKA_TOOL_JAVA_OPTS="-Xms1g -Xmx1g -XX:+UseG1GC"
work="$(mktemp -d)"
cleanup() {
  FEDMM_KAFKA_TOOL_JAVA_OPTS="" "$kafka" run-class org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$brokers" --delete --topic "$topic" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$kafka" run-class org.apache.kafka.tools.TopicCommand --bootstrap-server "$brokers" --create \
  --topic "$topic" --partitions "$partitions" --replication-factor 1 \
  --config "max.message.bytes=$max_bytes" >/dev/null

# linger 0 and one record per batch: the producer sends as fast as the broker acknowledges.
"$kafka" run-class org.apache.kafka.tools.ProducerPerformance \
  --topic "$topic" --num-records "$records" --record-size "$record_bytes" --throughput -1 \
  --producer-props "bootstrap.servers=$brokers" "acks=$acks" "max.request.size=$max_bytes" \
  "batch.size=$record_bytes" "buffer.memory=$((record_bytes * 64))" linger.ms=0 compression.type=none \
  >"$work/produce.out" 2>"$work/produce.err" \
  || { cat "$work/produce.err" "$work/produce.out" >&2; echo "kafka-perf: ProducerPerformance failed" >&2; exit 1; }

# Final summary: "512 records sent, 95.6 records/sec (95.60 MB/sec), 250.1 ms avg latency, 900.0 ms max latency, 240 ms 50th, 800 ms 95th, 880 ms 99th, 900 ms 99.9th."
summary="$(grep -E '^[0-9]+ records sent,' "$work/produce.out" | tail -n 1)"
[ -n "$summary" ] || { cat "$work/produce.out" "$work/produce.err" >&2; echo "kafka-perf: no producer summary found" >&2; exit 1; }
p_records_s="$(sed -E 's/.* records sent, ([0-9.]+) records\/sec.*/\1/' <<<"$summary")"
p_mb_s="$(sed -E 's/.*\(([0-9.]+) MB\/sec\).*/\1/' <<<"$summary")"
p_avg="$(sed -E 's/.*, ([0-9.]+) ms avg latency.*/\1/' <<<"$summary")"
p_p99="$(sed -E 's/.*, ([0-9.]+) ms 99th,.*/\1/' <<<"$summary")"
echo "kafka-native produce_mb_s=$p_mb_s records_s=$p_records_s records=$records record_bytes=$record_bytes partitions=$partitions acks=$acks avg_latency_ms=$p_avg p99_latency_ms=$p_p99"

cat >"$work/consumer.properties" <<EOF
max.partition.fetch.bytes=$max_bytes
fetch.max.bytes=$((max_bytes * 8))
auto.offset.reset=earliest
EOF
"$kafka" run-class org.apache.kafka.tools.ConsumerPerformance \
  --bootstrap-server "$brokers" --topic "$topic" --num-records "$records" \
  --group "fedmm-bench-$$" --command-config "$work/consumer.properties" --timeout 30000 \
  >"$work/consume.out" 2>"$work/consume.err" \
  || { cat "$work/consume.err" "$work/consume.out" >&2; echo "kafka-perf: ConsumerPerformance failed" >&2; exit 1; }

# CSV: start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
# fetch.MB.sec excludes the group join, as a long-lived consumer (a fedmm worker) never pays it per batch.
row="$(grep -E '^[0-9]{4}-' "$work/consume.out" | tail -n 1)"
[ -n "$row" ] || { cat "$work/consume.out" "$work/consume.err" >&2; echo "kafka-perf: no consumer summary found" >&2; exit 1; }
IFS=', ' read -r -a f <<<"$(sed -E 's/^[0-9-]+ [0-9:]+, [0-9-]+ [0-9:]+, //' <<<"$row")"
c_consumed="${f[2]}"
[ "$c_consumed" = "$records" ] || { echo "kafka-perf: consumed $c_consumed of $records records" >&2; exit 1; }
echo "kafka-native consume_mb_s=${f[6]} records_s=${f[7]} records=$records record_bytes=$record_bytes partitions=$partitions total_mb_s=${f[1]} rebalance_ms=${f[4]}"
