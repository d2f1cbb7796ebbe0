#!/usr/bin/env bash
# The forward pass with the int8 and bf16 projections on AMX tiles against the AVX-512 kernels
# (int8: VNNI, DEBERTA_NER_INT8_KERNEL=vnni; bf16: vdpbf16ps, DEBERTA_NER_BF16_KERNEL=avx512),
# side by side in one run on one machine: `biomed-ner bench` on the same model and token ids,
# the sides alternated ROUNDS times, at batch 1 and 8 of LENS tokens. Prints each run's JSON
# line, then the median ms per pass of each side and the AVX-512 / AMX ratio.
#   bench/amx_bench.sh MODEL_DIR [ROUNDS] [THREADS] [LENS] [DTYPES]
#   (MODEL_DIR/model from bench/make_base_model.py; LENS default "28 256", DTYPES "int8 bf16";
#    BIN=path/to/biomed-ner, default target/release/biomed-ner; ITERS, WARMUP per run)
set -euo pipefail
MODEL=$(realpath "$1"); ROUNDS=${2:-3}; THREADS=${3:-2}; LENS=${4:-28 256}; DTYPES=${5:-int8 bf16}
[ -d "$MODEL/model" ] && MODEL=$MODEL/model
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/biomed-ner}; ITERS=${ITERS:-10}; WARMUP=${WARMUP:-2}
OUT=$(mktemp /tmp/biomed-ner-amx-bench.XXXXXX)
trap 'rm -f "$OUT"' EXIT
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), flags: $(grep -o -w 'amx_tile\|amx_int8\|amx_bf16\|avx512_vnni\|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), $("$BIN" --version), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rounds $ROUNDS, threads $THREADS, iters $ITERS, warm-up $WARMUP, lens $LENS, model $MODEL"
for round in $(seq "$ROUNDS"); do
    for dtype in $DTYPES; do
        for side in avx512 amx; do
            e=X=
            [ "$side/$dtype" = avx512/int8 ] && e=DEBERTA_NER_INT8_KERNEL=vnni
            [ "$side/$dtype" = avx512/bf16 ] && e=DEBERTA_NER_BF16_KERNEL=avx512
            for len in $LENS; do
                for batch in 1 8; do
                    line=$(env "$e" "$BIN" bench --model "$MODEL" --dtype "$dtype" --threads "$THREADS" \
                        --batch "$batch" --len "$len" --iters "$ITERS" --warmup "$WARMUP")
                    echo "round $round $side $line" | tee -a "$OUT"
                done
            done
        done
    done
done
python3 - "$OUT" <<'PY'
import collections, json, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    _, _, side, js = line.split(" ", 3)
    d = json.loads(js)
    runs[(d["dtype"], d["batch"], d["len"], side)].append(d["ms_per_batch"])
print(f"{'dtype':6} {'batch x len':>11} {'AVX-512 ms':>11} {'AMX ms':>9} {'AVX-512/AMX':>12}   (median of {len(next(iter(runs.values())))} rounds)")
for (dtype, batch, length) in sorted({k[:3] for k in runs}, key=lambda k: (k[0] != "int8", k[2], k[1])):
    a, b = statistics.median(runs[(dtype, batch, length, "avx512")]), statistics.median(runs[(dtype, batch, length, "amx")])
    print(f"{dtype:6} {f'{batch} x {length}':>11} {a:11.1f} {b:9.1f} {a / b:11.2f}x")
PY
