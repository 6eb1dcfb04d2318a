#!/usr/bin/env bash
# Starts the local Kafka broker and Redis server that tests, benchmarks and `fedmm serve` use.
# Both scripts are idempotent: servers already running are reused.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/redis.sh" start
"$here/kafka.sh" start
echo "local infrastructure ready: FEDMM_KAFKA_BROKERS=127.0.0.1:${FEDMM_KAFKA_PORT:-9092} FEDMM_REDIS_URL=redis://127.0.0.1:${FEDMM_REDIS_PORT:-6379}"
