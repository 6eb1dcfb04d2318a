#!/usr/bin/env bash
# Stops the local Kafka broker and Redis server started by up.sh; their data stays on disk
# (use `kafka.sh clean` / `redis.sh clean` to remove it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
status=0
"$here/kafka.sh" stop || status=$?
"$here/redis.sh" stop || status=$?
exit "$status"
