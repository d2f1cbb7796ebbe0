#!/usr/bin/env bash
# The shared inference service against per-backend models, side by side in one run on one
# machine: CLIENTS concurrent sessions (pgbench, custom scripts) with the same model
# (bench/make_base_model.py) and the same 240 short clinical sentences, on two throw-away
# PostgreSQL 15 clusters run one after the other:
#   backend: biomed_ner not preloaded, each session loads its own model (as without the
#            service); biomed_ner.threads at its default (one per core) and at 1;
#   service: biomed_ner preloaded, one model process with biomed_ner.threads = one per core
#            (or the SHAPES below).
# Workloads: `SELECT biomed_ner(body)` of a random sentence, and INSERT of a random sentence
# into a table with the trigger. Each run lasts WARMUP + MEASURE seconds; only transactions
# that end after the warm-up count (so model loads are left out of throughput). Prints notes/s,
# tokens/s, p50 and p99 latency, the server's memory (the sum of the proportional set size,
# PSS, of the postmaster and every process under it, including the model process; the largest
# of samples taken each second of the measured part), the first call on a fresh connection, and
# one note in a warm session.
#   bench/service_bench.sh DIR [CLIENTS] [MEASURE] [WARMUP]     DIR from bench/make_base_model.py
# DTYPE=int8 (or f16, bf16) runs both sides in that dtype (biomed_ner.dtype); f32 by default.
# SHAPES: the service's shapes to run, WORKERSxTHREADS each (biomed_ner.workers model processes
# of biomed_ner.threads threads); default one process of one thread per core, 1xNPROC.
# SIDES=service (or backend) runs one side only.
# Run as root after `cargo pgrx install --release`. TOKENS_PER_NOTE (average tokens of the
# sentences, special tokens included) is read from DIR/tokens_per_note if there.
set -euo pipefail
DIR=$(realpath "$1"); CLIENTS=${2:-8}; MEASURE=${3:-30}; WARMUP=${4:-15}; DTYPE=${DTYPE:-f32}; SIDES=${SIDES:-backend service}
SHAPES=${SHAPES:-1x$(nproc)}
cd "$(dirname "$0")/.."
. scripts/cluster.sh
chmod -R a+rX "$DIR"
TOKENS=$(cat "$DIR/tokens_per_note" 2>/dev/null || echo 0)
WORK=$(mktemp -d /tmp/biomed-ner-service-bench.XXXXXX); chmod 777 "$WORK"
NOTE='A 48-year-old female presented with vaginal bleeding and abnormal Pap smears.'
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p')"
echo "clients $CLIENTS, warm-up $WARMUP s, measured $MEASURE s, tokens per note $TOKENS, dtype $DTYPE"

# Sum of PSS (kB) of the postmaster and all its descendants.
cluster_pss() {
    local pm; pm=$(head -1 "$PGDATA_DIR/postmaster.pid")
    local pids; pids=$(ps -e -o pid=,ppid= | awk -v root="$pm" '
        { parent[$1] = $2 } END { for (p in parent) { q = p; while (q in parent && q != root && q > 1) q = parent[q]; if (q == root) print p }; print root }')
    local sum=0 v
    for p in $pids; do
        v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

setup_db() { # loads the sentences and the trigger table into database postgres
    cluster_psql -d postgres -v notes="$DIR/sentences.jsonl" -v table=sentences < bench/load_sentences.sql >/dev/null
    cluster_psql -d postgres >/dev/null <<'SQL'
CREATE EXTENSION biomed_ner;
CREATE TABLE notes (id bigserial PRIMARY KEY, body text, entities jsonb);
CREATE TRIGGER annotate BEFORE INSERT ON notes FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('body', 'entities');
SQL
    echo '\set i random(1, 240)
SELECT biomed_ner(body) FROM sentences WHERE id = :i;' > "$WORK/select.sql"
    echo '\set i random(1, 240)
INSERT INTO notes (body) SELECT body FROM sentences WHERE id = :i;' > "$WORK/insert.sql"
}

# run LABEL SCRIPT [SETTING=VALUE ...]: one pgbench run; prints its line.
run() {
    local label=$1 script=$2; shift 2
    local opts=""
    for s in "$@"; do opts="$opts -c $s"; done
    rm -f "$WORK"/log.*
    (cd "$WORK" && runuser -u postgres -- env PGOPTIONS="$opts" "$PG_BIN/pgbench" -n -h "$PGDATA_DIR" -p "$PG_PORT" -U postgres \
        -c "$CLIENTS" -j "$CLIENTS" -T $((WARMUP + MEASURE)) -f "$WORK/$script" -l --log-prefix="$WORK/log" postgres \
        >"$WORK/pgbench.out" 2>&1) &
    local bench=$! start; start=$(date +%s)
    local peak=0 pss
    sleep "$WARMUP"
    while kill -0 "$bench" 2>/dev/null; do
        pss=$(cluster_pss); ((pss > peak)) && peak=$pss
        sleep 1
    done
    wait "$bench" || { cat "$WORK/pgbench.out"; return 1; }
    cat "$WORK"/log.* | python3 bench/pgbench_summary.py "$label" "$start" "$WARMUP" "$MEASURE" "$TOKENS" "$peak"
    grep -h "failed\|aborted" "$WORK/pgbench.out" | grep -v " 0 (0.000%)" || true
}

first_call() { # LABEL: the first call on each of 3 fresh connections (ms)
    local label=$1 times=()
    for _ in 1 2 3; do
        times+=("$(cluster_psql -d postgres -At -c '\timing on' -c "SELECT count(*) FROM jsonb_array_elements(biomed_ner('$NOTE'))" \
            | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')")
    done
    echo "$label first call on a fresh connection: ${times[*]} ms"
    local warm; warm=$(cluster_psql -d postgres -At -c '\timing on' -c "SELECT count(biomed_ner('$NOTE'))" \
        -c "SELECT count(biomed_ner('$NOTE')) FROM generate_series(1, 20)" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
    echo "$label one note in a warm session, mean of 20: $(python3 -c "print(round($warm / 20, 1))") ms"
}

if [[ " $SIDES " == *" backend "* ]]; then
echo "== per-backend models (not preloaded)"
CLUSTER_THREADS=$(nproc) CLUSTER_CONF="biomed_ner.model = '$DIR/model'
biomed_ner.dtype = '$DTYPE'" start_cluster 54371
setup_db
first_call "backend"
run "backend, threads $(nproc) per backend: SELECT" select.sql
run "backend, threads $(nproc) per backend: INSERT+trigger" insert.sql
run "backend, threads 1 per backend: SELECT" select.sql biomed_ner.threads=1
run "backend, threads 1 per backend: INSERT+trigger" insert.sql biomed_ner.threads=1
stop_cluster; PGDATA_DIR=
fi

[[ " $SIDES " == *" service "* ]] || { rm -rf "$WORK"; exit 0; }
for shape in $SHAPES; do
workers=${shape%x*}; threads=${shape#*x}
echo "== shared inference service (preloaded): $workers model process(es) of $threads thread(s)"
CLUSTER_THREADS=$(nproc) CLUSTER_CONF="biomed_ner.model = '$DIR/model'
biomed_ner.dtype = '$DTYPE'
biomed_ner.workers = $workers
biomed_ner.threads = $threads" start_cluster 54372 -c shared_preload_libraries=biomed_ner
for _ in $(seq 600); do
    [ "$(cluster_psql -d postgres -Atc "SELECT biomed_ner_service()->>'state'" 2>/dev/null)" = ready ] && break; sleep 0.1
done
setup_db
times=()
for _ in 1 2 3; do
    times+=("$(cluster_psql -d postgres -At -c '\timing on' -c "SELECT biomed_ner_service()->>'state'" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')")
done
echo "service status round trip on a fresh connection (connect, ask, answer; no inference): ${times[*]} ms"
first_call "service ${shape}"
run "service ${workers}x${threads} threads: SELECT" select.sql
run "service ${workers}x${threads} threads: INSERT+trigger" insert.sql
cluster_psql -d postgres -Atc "SELECT 'service ${shape}: ' || (s->>'batches') || ' batches, ' || (s->>'mean_batch_notes') || ' notes per batch on average' FROM biomed_ner_service() s"
stop_cluster; PGDATA_DIR=
done
rm -rf "$WORK"
