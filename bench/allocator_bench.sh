#!/usr/bin/env bash
# glibc malloc's defaults against the settings the engine makes when it loads a model
# (biomed_ner_engine::tune_allocator: no mapping of its own per buffer, trim threshold 128 MB), side by side in
# one run on one machine, the same model (bench/make_base_model.py) on both sides, the two
# sides alternated ROUNDS times:
#   cli:      `biomed-ner bench` forward passes (batch x tokens: 1x32, 8x128, 2x512, 8x512),
#             ms a batch and the process's minor page faults;
#   postgres: two PostgreSQL 15 clusters, models per backend, biomed_ner.threads one per core:
#             one session annotates the MACCROBAT test split's reports (long: several 512-token
#             windows each) and then the 240 short sentences; seconds, the backend's minor
#             page faults, and its resident memory after (VmRSS) and at its peak (VmHWM).
# The default side runs with GLIBC_TUNABLES=glibc.malloc.perturb=0 (glibc's default value of a
# setting that changes nothing): the engine leaves malloc alone when the environment sets it.
# BASELINE_ENV replaces that environment (MALLOC_ARENA_MAX=16: the engine's settings but an
# arena per thread, against the backend's one arena); PARTS="postgres" skips the CLI.
#   bench/allocator_bench.sh DIR [ROUNDS]     DIR from bench/make_base_model.py
# Run as root after `cargo build --release -p biomed-ner-cli` and `cargo pgrx install --release`.
set -euo pipefail
DIR=$(realpath "$1"); ROUNDS=${2:-3}
cd "$(dirname "$0")/.."
. scripts/cluster.sh
chmod -R a+rX "$DIR"
CLI=target/release/biomed-ner
DEFAULT_ENV=${BASELINE_ENV:-GLIBC_TUNABLES=glibc.malloc.perturb=0}
PARTS=${PARTS:-cli postgres}
WORK=$(mktemp -d /tmp/biomed-ner-allocator-bench.XXXXXX); chmod 777 "$WORK"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p'), $(ldd --version | head -1)"
echo "rounds $ROUNDS; each figure: the median of the rounds, then every round's value"

# median LABEL VALUES...: prints "LABEL: MEDIAN (v1 v2 ...)".
median() {
    local label=$1; shift
    python3 -c 'import statistics, sys; v = [float(x) for x in sys.argv[2:]]; print(f"{sys.argv[1]}: {statistics.median(v):g} (" + " ".join(sys.argv[2:]) + ")")' "$label" "$@"
}

# cli_pass ENV BATCH LEN: "MS FAULTS" of one `biomed-ner bench` process.
cli_pass() {
    env $1 python3 - "$CLI" "$DIR/model" "$2" "$3" <<'PY'
import json, os, subprocess, sys
cli, model, batch, length = sys.argv[1:]
p = subprocess.Popen([cli, "bench", "--model", model, "--batch", batch, "--len", length, "--iters", "5", "--warmup", "2"],
                     stdout=subprocess.PIPE)
out = p.stdout.read()
_, status, usage = os.wait4(p.pid, 0)
assert status == 0, status
print(round(json.loads(out)["ms_per_batch"], 1), usage.ru_minflt)
PY
}

echo "default side: $DEFAULT_ENV"
[[ " $PARTS " == *" cli "* ]] && echo "== cli: forward passes, $(nproc) threads"
for shape in $([[ " $PARTS " == *" cli "* ]] && echo 1x32 8x128 2x512 8x512); do
    b=${shape%x*}; l=${shape#*x}
    declare -A ms=() faults=()
    for _ in $(seq "$ROUNDS"); do
        for side in default tuned; do
            [ "$side" = default ] && e=$DEFAULT_ENV || e=
            read -r m f < <(cli_pass "$e" "$b" "$l")
            ms[$side]="${ms[$side]:-} $m"; faults[$side]="${faults[$side]:-} $f"
        done
    done
    for side in default tuned; do
        median "cli ${shape} ${side} ms/batch" ${ms[$side]}
        median "cli ${shape} ${side} minor faults" ${faults[$side]}
    done
    python3 -c 'import statistics as s, sys; d, t = ([float(x) for x in a.split()] for a in sys.argv[2:]); print(f"cli {sys.argv[1]} speed-up, median default / median tuned: {s.median(d) / s.median(t):.2f}x")' \
        "$shape" "${ms[default]}" "${ms[tuned]}"
    unset ms faults
done

echo "== postgres: models per backend, biomed_ner.threads $(nproc)"
python3 - "$WORK/reports.jsonl" <<'PY'
import json, sys
root = "data/maccrobat"  # the working directory is the repository root
ids = [l.split("\t")[0] for l in open(f"{root}/SPLIT.tsv").read().splitlines()[1:] if l.endswith("\ttest")]
with open(sys.argv[1], "w") as out:
    for i in ids:
        out.write(json.dumps({"text": open(f"{root}/{i}.txt", encoding="utf-8").read()}) + "\n")
print(f"{len(ids)} reports, {sum(len(open(f'{root}/{i}.txt', encoding='utf-8').read()) for i in ids)} characters")
PY
# Two clusters at once, one for each side, so that the rounds alternate without restarts.
declare -A DATA=() PORT=([default]=54381 [tuned]=54382)
stop_both() { for side in default tuned; do PGDATA_DIR=${DATA[$side]:-} stop_cluster; done; rm -rf "$WORK"; }
for side in default tuned; do
    if [ "$side" = default ]; then
        export "$DEFAULT_ENV"
    fi
    CLUSTER_THREADS=$(nproc) CLUSTER_CONF="biomed_ner.model = '$DIR/model'" start_cluster "${PORT[$side]}"
    unset "${DEFAULT_ENV%%=*}"
    DATA[$side]=$PGDATA_DIR
    trap stop_both EXIT
    cluster_psql -d postgres -c 'CREATE EXTENSION biomed_ner' >/dev/null
    cluster_psql -d postgres -v notes="$WORK/reports.jsonl" -v table=reports -f bench/load_sentences.sql >/dev/null
    cluster_psql -d postgres -v notes="$DIR/sentences.jsonl" -v table=sentences -f bench/load_sentences.sql >/dev/null
done

# pg_round SIDE: "REPORTS_S SENTENCES_S RSS_MB HWM_MB FAULTS ENTITIES" of one fresh session
# (FAULTS: the backend's minor page faults, model load included).
pg_round() {
    PGDATA_DIR=${DATA[$1]} PG_PORT=${PORT[$1]} cluster_psql -d postgres -At <<'SQL' | python3 -c '
import re, sys
text = sys.stdin.read()
times = [float(t) / 1000 for t in re.findall(r"^Time: ([0-9.]+) ms", text, re.M)]
kb = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M))
entities = re.findall(r"^(\d+)$", text, re.M)
faults = re.search(r"^minflt: (\d+)", text, re.M).group(1)
print(round(times[1], 2), round(times[2], 2), int(kb["VmRSS"]) // 1024, int(kb["VmHWM"]) // 1024, faults, entities[1])'
SELECT pg_backend_pid() AS pid \gset
\timing on
SELECT count(*) FROM jsonb_array_elements(biomed_ner('Fever and cough for three days.'));
SELECT sum(jsonb_array_length(biomed_ner(body))) FROM reports;
SELECT sum(jsonb_array_length(biomed_ner(body))) FROM sentences;
\timing off
\setenv PID :pid
\! grep -E '^Vm(RSS|HWM)' /proc/$PID/status; awk '{print "minflt:", $10}' /proc/$PID/stat
SQL
}

declare -A rep=() sen=() rss=() hwm=() flt=() ent=()
for _ in $(seq "$ROUNDS"); do
    for side in default tuned; do
        read -r r s m h f n < <(pg_round "$side")
        rep[$side]="${rep[$side]:-} $r"; sen[$side]="${sen[$side]:-} $s"; rss[$side]="${rss[$side]:-} $m"; hwm[$side]="${hwm[$side]:-} $h"
        flt[$side]="${flt[$side]:-} $f"
        ent[$side]=$n
    done
done
for side in default tuned; do
    median "postgres ${side} reports s" ${rep[$side]}
    median "postgres ${side} 240 sentences s" ${sen[$side]}
    median "postgres ${side} backend VmRSS MB after the reports" ${rss[$side]}
    median "postgres ${side} backend VmHWM MB" ${hwm[$side]}
    median "postgres ${side} backend minor faults" ${flt[$side]}
    echo "postgres ${side} entities in the reports: ${ent[$side]}"
done
[ "${ent[default]}" = "${ent[tuned]}" ] || { echo "the two sides found different entities" >&2; exit 1; }
python3 -c 'import statistics as s, sys; v = [[float(x) for x in a.split()] for a in sys.argv[1:]]
print(f"postgres speed-up, median default / median tuned: reports {s.median(v[0]) / s.median(v[1]):.2f}x, short sentences {s.median(v[2]) / s.median(v[3]):.2f}x")' \
    "${rep[default]}" "${rep[tuned]}" "${sen[default]}" "${sen[tuned]}"
