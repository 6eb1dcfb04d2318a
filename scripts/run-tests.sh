#!/usr/bin/env bash
# Runs node's test runner over compiled tests. Usage: scripts/run-tests.sh [dir...]
# Default: every workspace plus test/. Set TEST_CONCURRENCY to change parallelism.
set -euo pipefail
cd "$(dirname "$0")/.."
roots=("$@")
[ ${#roots[@]} -eq 0 ] && roots=(libs services cli test)
mapfile -t files < <(for r in "${roots[@]}"; do find "$r" -path '*/node_modules' -prune -o -path '*/dist/*' -name '*.test.js' -print; done | sort)
if [ ${#files[@]} -eq 0 ]; then echo "no compiled tests under: ${roots[*]} (run make build first)" >&2; exit 1; fi
# Node's own choice of reporter (spec on a terminal, TAP otherwise), then the slowest files on stderr.
if [ -t 1 ]; then reporter=spec; else reporter=tap; fi
exec node --enable-source-maps --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-timeout="${TEST_TIMEOUT_MS:-300000}" \
  --test-reporter="$reporter" --test-reporter-destination=stdout \
  --test-reporter=./scripts/test-durations.mjs --test-reporter-destination=stderr \
  "${files[@]}"
