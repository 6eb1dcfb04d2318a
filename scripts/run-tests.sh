#!/usr/bin/env bash
# Runs node's test runner over compiled tests. Usage: scripts/run-tests.sh [dir...]
# Default: every workspace plus test/. Set TEST_CONCURRENCY to change parallelism.
set -euo pipefail
cd "$(dirname "$0")/.."
roots=("$@")
[ ${#roots[@]} -eq 0 ] && roots=(libs services cli test)
mapfile -t files < <(for r in "${roots[@]}"; do find "$r" -path '*/node_modules' -prune -o -path '*/dist/*' -name '*.test.js' -print; done | sort)
if [ ${#files[@]} -eq 0 ]; then echo "no compiled tests under: ${roots[*]} (run make build first)" >&2; exit 1; fi
exec node --enable-source-maps --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-timeout="${TEST_TIMEOUT_MS:-300000}" "${files[@]}"
