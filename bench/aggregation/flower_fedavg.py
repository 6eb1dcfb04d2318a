"""Times Flower's own FedAvg aggregate on the arrays the node benchmark wrote.

Usage: flower_fedavg.py FILE K P WEIGHTS_CSV REPS. FILE holds K float32 vectors of P elements.
Prints one JSON line: best seconds, update bytes per second, and a checksum of the result.
"""
import json
import sys
import time

import numpy as np
from flwr.server.strategy.aggregate import aggregate


def main() -> None:
    path, k, p, weights_csv, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    weights = [int(w) for w in weights_csv.split(",")]
    data = np.fromfile(path, dtype=np.float32, count=k * p).reshape(k, p)
    # One layer per client, as Flower receives a model of one flattened tensor.
    results = [([data[c].copy()], weights[c]) for c in range(k)]
    best = float("inf")
    out = None
    for _ in range(reps):
        start = time.perf_counter()
        out = aggregate(results)
        best = min(best, time.perf_counter() - start)
    result = out[0]
    print(json.dumps({
        "seconds": best,
        "bytesPerSecond": k * p * 4 / best,
        "dtype": str(result.dtype),
        "checksum": float(np.sum(result[:1000], dtype=np.float64)),
    }))


if __name__ == "__main__":
    main()
