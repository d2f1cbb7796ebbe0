#!/usr/bin/env bash
# One malloc arena per backend (what a backend sets before its inference threads start,
# biomed_ner_engine::share_main_arena) against an arena per thread (glibc's default, up to 8 per
# core), side by side in one run on one machine, the same model (bench/make_base_model.py),
# the two sides alternated ROUNDS times. Each round of a side runs the per-backend part of
# bench/service_bench.sh (CLIENTS sessions, 240 short sentences, SELECT and INSERT with the
# trigger, biomed_ner.threads one per core and 1): notes/s and the server's memory (the largest
# PSS sum of the measured part). The per-thread side runs with MALLOC_ARENA_MAX set to glibc's
# own limit for this machine (8 per core) in the server's environment: the engine leaves the
# arenas alone when the environment sets them.
#   bench/arena_bench.sh DIR [ROUNDS] [CLIENTS] [MEASURE] [WARMUP]     DIR from bench/make_base_model.py
# Run as root after `cargo pgrx install --release`.
set -euo pipefail
DIR=$(realpath "$1"); ROUNDS=${2:-2}; CLIENTS=${3:-8}; MEASURE=${4:-30}; WARMUP=${5:-15}
cd "$(dirname "$0")/.."
OWN_ENV=MALLOC_ARENA_MAX=$((8 * $(nproc)))
OUT=$(mktemp -d /tmp/biomed-ner-arena-bench.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p'), $(ldd --version | head -1)"
echo "rounds $ROUNDS, clients $CLIENTS, warm-up $WARMUP s, measured $MEASURE s; per-thread side: $OWN_ENV"
for round in $(seq "$ROUNDS"); do
    for side in per-thread shared; do
        [ "$side" = per-thread ] && e=$OWN_ENV || e=
        echo "== round $round, $side arenas"
        env $e SIDES=backend bench/service_bench.sh "$DIR" "$CLIENTS" "$MEASURE" "$WARMUP" | tee "$OUT/$side.$round" | grep -E "tx/s|first call|warm session"
    done
done
# summary: for each workload line, the median tx/s and memory of each side and their ratios.
python3 - "$OUT" "$ROUNDS" <<'PY'
import glob, re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
runs = {}
for side in ("per-thread", "shared"):
    for path in sorted(glob.glob(f"{out}/{side}.*")):
        for line in open(path):
            m = re.match(r"(backend, .*?)\s{2,}\s*([0-9.]+) tx/s.*memory\s+([0-9.]+) GB", line)
            if m:
                runs.setdefault(m.group(1), {}).setdefault(side, []).append((float(m.group(2)), float(m.group(3))))
print("== medians of the rounds: per-thread arenas / one arena per backend")
for label, sides in runs.items():
    a, b = sides["per-thread"], sides["shared"]
    ta, tb = statistics.median(x[0] for x in a), statistics.median(x[0] for x in b)
    ma, mb = statistics.median(x[1] for x in a), statistics.median(x[1] for x in b)
    print(f"{label:<44} {ta:6.1f} / {tb:6.1f} tx/s (shared {tb / ta:.2f}x)   memory {ma:5.2f} / {mb:5.2f} GB (shared {mb / ma:.2f}x)"
          f"   rounds: {' '.join(f'{x[0]:.1f}' for x in a)} / {' '.join(f'{x[0]:.1f}' for x in b)}")
PY
