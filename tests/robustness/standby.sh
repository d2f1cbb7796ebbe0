#!/usr/bin/env bash
# biomed_ner on a hot standby (a streaming replica, where nothing may take a transaction id):
# a throw-away PostgreSQL 15 primary and its standby, biomed_ner preloaded on both with the model
# folder chosen by the server's configuration. On the standby an ordinary role's biomed_ner(text),
# biomed_ner(text[]), biomed_ner_entities, biomed_ner_bulk and a parallel query give the entities
# the primary gave, through the standby's inference service and per backend, and the watched
# tables' status view reads there; the standby's log has no error of biomed_ner's.
#   tests/robustness/standby.sh          Run as root after `cargo pgrx install`.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/cluster.sh
MODEL=${BIOMED_NER_FUZZ_MODEL-$(scripts/fixtures-for-postgres)/v3_base_like}
CLUSTER_CONF="shared_preload_libraries = 'biomed_ner'
biomed_ner.model = '$MODEL'" start_cluster 54364
. tests/robustness/lib.sh
STANDBY=$(mktemp -d /tmp/biomed-ner-standby.XXXXXX); chown postgres:postgres "$STANDBY"; chmod 700 "$STANDBY"
STANDBY_PORT=54365
stop_standby() {
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$STANDBY" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$STANDBY"
}
trap 'stop_standby; stop_cluster' EXIT
sql() { cluster_psql -d postgres -Atc "$1"; }
ssql() { runuser -u postgres -- "$PG_BIN/psql" -X -q -h "$STANDBY" -p "$STANDBY_PORT" -v ON_ERROR_STOP=1 -d postgres -Atc "$1"; }

cluster_psql -d postgres -c "CREATE EXTENSION biomed_ner" >/dev/null
cluster_psql -d postgres -f "$(helpers_sql)" >/dev/null
sql "CREATE TABLE notes (id int PRIMARY KEY, body text, entities jsonb);
     INSERT INTO notes (id, body) SELECT i, 'Patient ' || i || ' had fever, cough and chest pain; aspirin ' || i || ' mg daily.'
     FROM generate_series(1, 40) i;
     ANALYZE notes;
     CREATE TABLE expected AS SELECT id, biomed_ner(body) AS e FROM notes;
     SELECT biomed_ner_watch('notes', 'body', 'entities');
     CREATE ROLE reader LOGIN;
     GRANT SELECT ON notes, expected TO reader" >/dev/null

# (The primary's socket lives in its data folder: pg_basebackup warns that it skips it.)
runuser -u postgres -- "$PG_BIN/pg_basebackup" -h "$PGDATA_DIR" -p "$PG_PORT" -U postgres -D "$STANDBY" -R -X stream 2>&1 \
    | { grep -v 'skipping special file' || true; } >&2
runuser -u postgres -- env -u RUST_BACKTRACE RAYON_NUM_THREADS=2 "$PG_BIN/pg_ctl" -D "$STANDBY" -l "$STANDBY/server.log" -w \
    -o "-p $STANDBY_PORT -k $STANDBY -c listen_addresses=''" start >/dev/null
lsn=$(sql "SELECT pg_current_wal_lsn()")
for _ in $(seq 300); do
    [ "$(ssql "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn" 2>/dev/null)" = t ] && break
    sleep 0.1
done
check "the standby is in recovery and has the primary's notes" \
    "$(ssql "SELECT pg_is_in_recovery() AND (SELECT count(*) = 40 FROM notes)")"

as_reader() { # MODE QUERY: the query as role reader, with biomed_ner.execution = MODE
    ssql "SET SESSION AUTHORIZATION reader; SET biomed_ner.execution = '$1'; $2"
}
for mode in service backend; do
    check "$mode: biomed_ner(text) on the standby = the primary's" \
        "$(as_reader "$mode" "SELECT bool_and(same_entities(biomed_ner(n.body), x.e)) FROM notes n JOIN expected x USING (id)")"
    check "$mode: biomed_ner(text[]) on the standby = the primary's" \
        "$(as_reader "$mode" "SELECT bool_and(same_entities(a.e, x.e)) FROM unnest(
              (SELECT biomed_ner(array_agg(body ORDER BY id)) FROM notes)) WITH ORDINALITY a(e, id) JOIN expected x USING (id)")"
    check "$mode: biomed_ner_entities on the standby" \
        "$(as_reader "$mode" "SELECT (SELECT count(*) FROM notes, biomed_ner_entities(body)) = (SELECT sum(jsonb_array_length(e)) FROM expected)")"
    check "$mode: biomed_ner_bulk on the standby" \
        "$(as_reader "$mode" "SELECT bool_and(same_entities(b.entities, x.e)) AND count(*) = 40
              FROM biomed_ner_bulk('SELECT id, body FROM notes') b JOIN expected x USING (id)")"
    check "$mode: a parallel query on the standby" \
        "$(as_reader "$mode" "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
              SET $([ "$PG_MAJOR" -ge 16 ] && echo debug_parallel_query || echo force_parallel_mode) = on; SELECT bool_and(same_entities(biomed_ner(n.body), x.e)) FROM notes n JOIN expected x USING (id)")"
done
check "the status view of watched tables reads on the standby (40 rows pending, drained on the primary only)" \
    "$(ssql "SELECT pending = 40 AND oldest_pending_age IS NOT NULL FROM biomed_ner_queue_status")"
echo "standby log: $(grep -c 'ERROR' "$STANDBY/server.log" || true) ERROR lines"
check "the standby's log: no error, no crash" \
    "$(grep -qE 'ERROR|was terminated by signal' "$STANDBY/server.log" && echo f || echo t)"
summary standby
