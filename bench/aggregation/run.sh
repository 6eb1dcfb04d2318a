#!/usr/bin/env bash
# Aggregation benchmark: FedAvg GB/s next to memcpy and Flower's aggregate on the same arrays,
# peak RSS as K grows, 1 vs 2 workers. Sizes: BENCH_K, BENCH_P, BENCH_SHARDS, BENCH_REPS,
# BENCH_RSS_P, BENCH_RSS_KS. Flower is installed into ${FEDMM_CACHE:-$HOME/.cache/fedmm}/py-bench.
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
BENCH_PYTHON="$venv/bin/python" exec node bench/aggregation/bench.mjs
