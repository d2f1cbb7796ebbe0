#!/usr/bin/env python3
"""Summarises pgbench per-transaction logs (pgbench -l) read from stdin: transactions per
second, p50 and p99 latency, counting only transactions that ended after the warm-up.

    cat log.* | python3 bench/pgbench_summary.py LABEL START WARMUP MEASURE [TOKENS_PER_TX] [PEAK_PSS_KB]

START is the run's start (epoch seconds); log lines are: client, transaction, latency (us),
script, end time (s), end time (us).
"""
import sys


def main():
    label, start, warm, measure = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    tokens = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    peak = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    lat = []
    for line in sys.stdin:
        f = line.split()
        if int(f[4]) + int(f[5]) / 1e6 >= start + warm:
            lat.append(int(f[2]) / 1000)
    lat.sort()
    n = len(lat)
    q = lambda p: lat[min(n - 1, int(p * n))] if n else float("nan")
    out = f"{label:<44} {n / measure:8.1f} tx/s"
    if tokens:
        out += f" {n / measure * tokens:9.0f} tokens/s"
    out += f"  p50 {q(0.5):7.1f} ms  p99 {q(0.99):7.1f} ms"
    if peak:
        out += f"  memory {peak / 1048576:5.2f} GB"
    print(out)


if __name__ == "__main__":
    main()
