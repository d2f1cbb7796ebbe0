#!/usr/bin/env bash
# Watched tables across crashes, on a throw-away PostgreSQL 15 cluster with biomed_ner preloaded
# and a queue worker for database postgres: `pg_ctl -m immediate` in the middle of a backfill,
# and again in the middle of a load run (CLIENTS pgbench clients inserting notes and rewriting
# the text of existing ones); after each restart the queue must drain to the same final state:
# no row lost or left without entities, none with the entities of an older text (every row's
# jsonb has the entities of biomed_ner(body): types, spans, words; scores within 1e-5). Then
# pg_dump/pg_restore of the database: the watch, its trigger, its index and its pending rows come back;
# DROP EXTENSION refuses while a table is watched and with CASCADE takes the index and trigger.
#   tests/robustness/queue.sh [ROWS] [CLIENTS]     Run as root after `cargo pgrx install`.
set -euo pipefail
ROWS=${1:-20000}; CLIENTS=${2:-4}
cd "$(dirname "$0")/../.."
. scripts/cluster.sh
MODEL=${BIOMED_NER_FUZZ_MODEL-$(scripts/fixtures-for-postgres)/v3_base_like}
CLUSTER_CONF="shared_preload_libraries = 'biomed_ner'
biomed_ner.model = '$MODEL'
biomed_ner.queue_databases = 'postgres'" start_cluster 54362
. tests/robustness/lib.sh
sql() { cluster_psql -d postgres -Atc "$1"; }
restart_immediately() {
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m immediate stop >/dev/null
    runuser -u postgres -- env -u RUST_BACKTRACE RAYON_NUM_THREADS=2 "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w \
        -o "-p $PG_PORT -k $PGDATA_DIR -c listen_addresses=''" start >/dev/null
}
wait_drained() { # seconds until the queue is empty and the backfill done (300 s at most)
    local t0=$SECONDS
    for _ in $(seq 3000); do
        [ "$(sql "SELECT pending = 0 FROM biomed_ner_queue_status" 2>/dev/null)" = t ] && { echo $((SECONDS - t0)); return 0; }
        sleep 0.1
    done
    echo never; return 1
}
final_state() { # NAME: every row annotated with the entities of its current text
    check "$1: no row without entities" "$(sql "SELECT count(*) = 0 FROM notes WHERE entities IS NULL")"
    check "$1: every row has the entities of its current text" \
        "$(sql "SELECT bool_and(same_entities(entities, biomed_ner(body))) FROM notes")"
    check "$1: no failed rows, no crash" "$(sql "SELECT failed = 0 FROM biomed_ner_queue_status")"
}
cluster_psql -d postgres -c "CREATE EXTENSION biomed_ner" >/dev/null
cluster_psql -d postgres -f "$(helpers_sql)" >/dev/null
sql "CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL, entities jsonb);
     INSERT INTO notes (body) SELECT 'Patient ' || i || ' had fever, cough and chest pain; aspirin ' || i % 300 || ' mg daily.'
     FROM generate_series(1, $ROWS) i" >/dev/null

# 1. Immediate stop in the middle of a backfill.
sql "SELECT biomed_ner_watch('notes', 'body', 'entities')" >/dev/null
for _ in $(seq 600); do [ "$(sql "SELECT done > 0 FROM biomed_ner_queue_status")" = t ] && break; sleep 0.05; done
sql "SELECT 'backfill: ' || done || ' rows done, ' || pending || ' pending at the immediate stop' FROM biomed_ner_queue_status"
restart_immediately
echo "backfill: queue empty $(wait_drained) s after the restart"
final_state "backfill"

# 2. Immediate stop in the middle of a load: inserts and rewrites of existing texts. (The watch
# is at least 24 s old by then, so that its oldest_pending_age, a few seconds read off the queue
# worker's clock, is told apart from the time since the watch, what it falls back to.)
while [ "$(sql "SELECT now() - created_at < interval '20 s' FROM biomed_ner_watches")" = t ]; do sleep 1; done
cat > "$PGDATA_DIR/load.sql" <<EOF
\set id random(1, $ROWS)
UPDATE notes SET body = 'Rewritten ' || :id || ': dyspnoea and nausea, ' || (random() * 1000)::int || ' mg' WHERE id = :id;
INSERT INTO notes (body) VALUES ('New note: headache and vomiting for ' || (random() * 10)::int || ' days.');
EOF
chown postgres "$PGDATA_DIR/load.sql"
(runuser -u postgres -- "$PG_BIN/pgbench" -n -h "$PGDATA_DIR" -p "$PG_PORT" -U postgres -c "$CLIENTS" -T 20 \
    -f "$PGDATA_DIR/load.sql" postgres >"$PGDATA_DIR/load.out" 2>&1 || true) &
sleep 4
status=$(sql "SELECT (SELECT count(*) FROM notes) || ' ' || pending || ' ' || extract(epoch FROM oldest_pending_age)
               || ' ' || CASE WHEN pending > 0 AND oldest_pending_age BETWEEN interval '0' AND interval '15 s' THEN 't' ELSE 'f' END
               FROM biomed_ner_queue_status")
read -r n_rows n_pending age_s age_ok <<<"$status"
echo "load: $n_rows rows, $n_pending pending at the immediate stop, the oldest for $age_s s"
check "load: the oldest pending row's age, from the worker's clock" "$age_ok"
# A held entry of a row that is gone (as a watch without backfill leaves when its rows are
# deleted): the worker's walk through the held entries, at its first idle round, removes it.
sql "INSERT INTO biomed_ner_held (relid, key, row_xmin, row_ctid, reason) VALUES ('notes', '-1', '3', '(0,1)', 'not backfilled')" >/dev/null
restart_immediately
wait
echo "load: queue empty $(wait_drained) s after the restart"
final_state "load"
for _ in $(seq 100); do [ "$(sql "SELECT count(*) FROM biomed_ner_held")" = 0 ] && break; sleep 0.1; done
check "idle: the held entry of a deleted row pruned by the worker" "$(sql "SELECT count(*) = 0 FROM biomed_ner_held")"
# An idle watched table costs the worker reads only: over 3 s (12 rounds) the cluster's next
# transaction id moves by at most the clock's reading of the minute. (Autovacuum, which after
# the load analyzes tables and so takes transaction ids, is off meanwhile.)
sql "ALTER SYSTEM SET autovacuum = off" >/dev/null; sql "SELECT pg_reload_conf()" >/dev/null; sleep 1
x0=$(sql "SELECT pg_snapshot_xmax(pg_current_snapshot())")
sleep 3
x1=$(sql "SELECT pg_snapshot_xmax(pg_current_snapshot())")
sql "ALTER SYSTEM RESET autovacuum" >/dev/null; sql "SELECT pg_reload_conf()" >/dev/null
echo "idle: the next transaction id moved by $((x1 - x0)) in 3 s"
check "idle: the queue worker writes nothing while nothing is pending" "$([ $((x1 - x0)) -le 1 ] && echo t || echo f)"

# 3. pg_dump and pg_restore: the watch, its trigger and its queue come back by name.
sql "SELECT biomed_ner_watch_pause('notes')" >/dev/null
sql "INSERT INTO notes (body) VALUES ('Queued before the dump: fever.')" >/dev/null
runuser -u postgres -- "$PG_BIN/pg_dump" -h "$PGDATA_DIR" -p "$PG_PORT" -U postgres -Fc -f "$PGDATA_DIR/dump" postgres
sql "CREATE DATABASE restored" >/dev/null
runuser -u postgres -- "$PG_BIN/pg_restore" -h "$PGDATA_DIR" -p "$PG_PORT" -U postgres -d restored "$PGDATA_DIR/dump"
rsql() { cluster_psql -d restored -Atc "$1"; }
rsql "SET biomed_ner.model = '$MODEL'; SELECT biomed_ner_watch_resume('notes')" >/dev/null
rsql "INSERT INTO notes (body) VALUES ('Inserted after the restore: cough.')" >/dev/null
check "dump and restore: the watch and its queue came back" \
    "$(rsql "SELECT table_name::text = 'notes' AND pending = 2 FROM biomed_ner_queue_status")"
drained=$(rsql "SET biomed_ner.model = '$MODEL'; SELECT biomed_ner_queue_drain('notes')" 2>&1)
echo "restored database: $drained rows drained; $(rsql "SELECT count(*) FROM notes WHERE entities IS NULL") rows without entities; $(rsql "SELECT last_error FROM biomed_ner_queue_status")"
check "dump and restore: the restored queue drains" \
    "$(rsql "SELECT '$drained' = '2' AND (SELECT count(*) = 0 FROM notes WHERE entities IS NULL)")"
# 4. DROP EXTENSION: refused while a table is watched (the pending index and the trigger depend
# on the extension, in the restored database too); with CASCADE both go, the table and its
# entities stay.
check "DROP EXTENSION while a table is watched: refused, naming the pending index" \
    "$({ rsql "DROP EXTENSION biomed_ner" 2>&1 || true; } | grep -q 'index notes_biomed_ner_pending depends on' && echo t || echo f)"
rows=$(rsql "SELECT count(*) FROM notes")
rsql "DROP EXTENSION biomed_ner CASCADE" >/dev/null 2>&1
check "DROP EXTENSION ... CASCADE: the pending index and the watch trigger gone, the rows kept" \
    "$(rsql "SELECT NOT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname LIKE 'notes_biomed_ner_pending%')
             AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname LIKE 'biomed_ner_watch%')
             AND (SELECT count(*) = $rows AND count(*) = count(entities) FROM notes)")"
check "server log: no error of the queue worker (it would exit and restart)" \
    "$(grep -q 'biomed_ner queue worker.*exited with exit code' "$PGDATA_DIR/server.log" && echo f || echo t)"
check "server log: no crash of a backend or worker" \
    "$(grep -qE 'was terminated by signal|terminating any other active server processes' "$PGDATA_DIR/server.log" && echo f || echo t)"
summary queue
