"""Times Flower's own FedAvg aggregate on the arrays the node benchmark wrote.

Usage: flower_fedavg.py FILE K P WEIGHTS_CSV. FILE holds K float32 vectors of P elements.
Stays up so that the node benchmark can interleave Flower with its own measurements: prints
{"ready": true}, then answers each stdin line "run" with {"seconds": ..., "cpuSeconds": ...} (one aggregate) and
"checksum" with the dtype and the sum of the first 1000 results; exits at end of input.
"""
import json
import sys
import time

import numpy as np
from flwr.server.strategy.aggregate import aggregate


def reply(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> None:
    path, k, p, weights_csv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    weights = [int(w) for w in weights_csv.split(",")]
    data = np.fromfile(path, dtype=np.float32, count=k * p).reshape(k, p)
    # One layer per client, as Flower receives a model of one flattened tensor.
    results = [([data[c].copy()], weights[c]) for c in range(k)]
    del data
    out = aggregate(results)  # warm-up, as the node side warms up
    reply({"ready": True})
    for line in sys.stdin:
        command = line.strip()
        if command == "run":
            cpu = time.process_time()
            start = time.perf_counter()
            out = aggregate(results)
            reply({"seconds": time.perf_counter() - start, "cpuSeconds": time.process_time() - cpu})
        elif command == "checksum":
            result = out[0]
            reply({"dtype": str(result.dtype), "checksum": float(np.sum(result[:1000], dtype=np.float64))})
        else:
            reply({"error": f"unknown command {command!r}; expected run or checksum"})


if __name__ == "__main__":
    main()
