#!/usr/bin/env bash
# Stops the local Kafka broker and Redis server started by up.sh, and any other broker or Redis
# that kafka.sh / redis.sh started under the same FEDMM_LOCAL_DIR on another port (such as a
# test's own crash-test Redis). Only servers with a pid file in this FEDMM_LOCAL_DIR are stopped:
# one started from another directory, or by something else, is left running. Data stays on disk
# (use `kafka.sh clean` / `redis.sh clean` to remove it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
local_root="${FEDMM_LOCAL_DIR:-/tmp/fedmm-local}"
status=0
"$here/kafka.sh" stop || status=$?
"$here/redis.sh" stop || status=$?

# <kind>/ holds the default port's server, <kind>-<port>/ the others (see kafka.sh, redis.sh).
stop_others() {
  local kind="$1" default_port="$2" var="$3" d port
  for d in "$local_root/$kind" "$local_root/$kind"-*; do
    [ -f "$d/$kind.pid" ] || continue
    port="$default_port"
    case "$d" in "$local_root/$kind"-*) port="${d#"$local_root/$kind"-}" ;; esac
    case "$port" in '' | *[!0-9]*) continue ;; esac
    env "$var=$port" "$here/$kind.sh" stop || status=$?
  done
}
stop_others kafka 9092 FEDMM_KAFKA_PORT
stop_others redis 6379 FEDMM_REDIS_PORT
exit "$status"
