#!/usr/bin/env bash
# Aggregation benchmark: FedAvg GB/s next to memcpy and Flower's aggregate on the same arrays,
# peak RSS as K grows, 1 vs 2 workers; then the throughput again with glibc keeping freed large
# blocks for reuse (the allocator setting recommended for aggregator workers, docs/AGGREGATION.md).
# Sizes: BENCH_K, BENCH_P, BENCH_SHARDS, BENCH_REPS, BENCH_RSS_P, BENCH_RSS_KS; BENCH_SECTIONS.
# Flower is installed into ${FEDMM_CACHE:-$HOME/.cache/fedmm}/py-bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
npx tsc -b libs/aggregation
venv="${FEDMM_CACHE:-$HOME/.cache/fedmm}/py-bench"
if ! "$venv/bin/python" -c 'import flwr, numpy' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q flwr numpy
fi
echo "flwr $("$venv/bin/python" -c 'import flwr; print(flwr.__version__)'), numpy $("$venv/bin/python" -c 'import numpy; print(numpy.__version__)')"
node bench/aggregation/precision.mjs
BENCH_PYTHON="$venv/bin/python" node bench/aggregation/bench.mjs
echo
echo "== again, with freed large blocks kept for reuse (fewer page faults on fresh result arrays)"
GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824 \
  BENCH_SECTIONS=throughput BENCH_PYTHON="$venv/bin/python" exec node bench/aggregation/bench.mjs
