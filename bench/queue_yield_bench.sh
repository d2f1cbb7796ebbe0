#!/usr/bin/env bash
# What a draining queue costs the inserts beside it, side by side in one run on one throw-away
# PostgreSQL 15 cluster (biomed_ner preloaded, so the queue's inference goes through the shared
# inference service; the bundled model; a queue worker for database postgres; default durability):
# CLIENTS pgbench clients insert one short note per transaction for SECONDS
#   idle    into a table with no watch, while the queue worker is idle (every watch paused);
#   drain   into a watched table, while the queue worker drains it and a backlog of BACKLOG rows;
# alternating ROUNDS times, for each setting in SETTINGS (a ';'-separated list of
# `name=value,...` applied with ALTER SYSTEM before its rounds; `-` for the defaults). Prints each
# run's tps, the medians' ratio drain/idle per setting, the rows the queue annotated during the
# drain runs, and the CPU share and nice value of the processes and threads that did the work.
#   bench/queue_yield_bench.sh [CLIENTS] [SECONDS] [ROUNDS] [BACKLOG] [SETTINGS]
# Run as root after `cargo pgrx install --release`.
set -euo pipefail
CLIENTS=${1:-4}; SECS=${2:-10}; ROUNDS=${3:-3}; BACKLOG=${4:-200000}
SETTINGS=${5:-"-;biomed_ner.queue_pause_ms=200"}
cd "$(dirname "$0")/.."
. scripts/cluster.sh
WORK=$(mktemp -d /tmp/biomed-ner-yield.XXXXXX); chmod 777 "$WORK"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); PostgreSQL $PG_MAJOR; clients $CLIENTS, $SECS s a run, $ROUNDS rounds, backlog $BACKLOG rows"
CLUSTER_CONF="shared_preload_libraries = 'biomed_ner'
biomed_ner.queue_databases = 'postgres'" start_cluster 54374
sql() { cluster_psql -d postgres -Atc "$1"; }
sql "CREATE EXTENSION biomed_ner" >/dev/null
for t in idle drain backlog; do
    sql "CREATE TABLE notes_$t (id bigserial PRIMARY KEY, body text, entities jsonb)" >/dev/null
    echo "INSERT INTO notes_$t (body) VALUES ('Patient presented with fever, cough and chest pain; given aspirin 81 mg daily.');" >"$WORK/$t.sql"
done
sql "INSERT INTO notes_backlog (body) SELECT 'Patient ' || i || ' had dyspnoea and nausea; metoprolol ' || i % 100 || ' mg.'
     FROM generate_series(1, $BACKLOG) i" >/dev/null
sql "SELECT biomed_ner_watch('notes_drain', 'body', 'entities'); SELECT biomed_ner_watch('notes_backlog', 'body', 'entities')" >/dev/null
queue() { sql "SELECT biomed_ner_watch_$1('notes_drain'); SELECT biomed_ner_watch_$1('notes_backlog')" >/dev/null; }
queue pause
sql "SELECT count(biomed_ner('warm up the service'))" >/dev/null
pgb() { # TABLE: tps
    runuser -u postgres -- "$PG_BIN/pgbench" -n -h "$PGDATA_DIR" -p "$PG_PORT" -U postgres -c "$CLIENTS" -j "$CLIENTS" \
        -T "$SECS" -f "$WORK/$1.sql" postgres 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
IFS=';' read -ra variants <<<"$SETTINGS"
for v in "${variants[@]}"; do
    sql "ALTER SYSTEM RESET ALL" >/dev/null
    if [ "$v" != - ]; then
        IFS=',' read -ra pairs <<<"$v"
        for p in "${pairs[@]}"; do sql "ALTER SYSTEM SET ${p%%=*} = '${p#*=}'" >/dev/null; done
    fi
    sql "SELECT pg_reload_conf()" >/dev/null; sleep 1
    : >"$WORK/idle.txt"; : >"$WORK/drain.txt"; done_rows=0
    for r in $(seq "$ROUNDS"); do
        queue pause; sleep 1
        echo "[$v] idle  round $r: $(pgb idle | tee -a "$WORK/idle.txt") tps"
        queue resume; sleep 1
        before=$(sql "SELECT sum(done) FROM biomed_ner_queue_status")
        if [ "$r" = 1 ]; then
            # What works meanwhile: the busiest threads over 3 s in the middle of the run.
            (sleep $((SECS / 2)); python3 bench/thread_cpu.py postgres 3 10 >"$WORK/top.txt") &
        fi
        echo "[$v] drain round $r: $(pgb drain | tee -a "$WORK/drain.txt") tps"
        wait
        done_rows=$((done_rows + $(sql "SELECT sum(done) FROM biomed_ner_queue_status") - before))
    done
    queue pause
    idle=$(median <"$WORK/idle.txt"); drain=$(median <"$WORK/drain.txt")
    echo "[$v] median idle $idle tps, drain $drain tps: ratio $(echo "scale=3; $drain / $idle" | bc); the queue annotated $done_rows rows in the drain runs ($(echo "scale=1; $done_rows / ($ROUNDS * $SECS)" | bc) rows/s)"
    echo "[$v] busiest threads during the first drain run:"
    sed 's/^/    /' "$WORK/top.txt"
done
rm -rf "$WORK"
