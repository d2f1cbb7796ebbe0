#!/usr/bin/env bash
# What queueing costs an insert, side by side in one run on one throw-away PostgreSQL 15 cluster
# (biomed_ner preloaded, default durability): CLIENTS pgbench clients inserting one short note per
# transaction for SECONDS into four tables, alternating ROUNDS times:
#   plain   no trigger;
#   noop    an AFTER INSERT row trigger (PL/pgSQL) that does nothing: the trigger machinery;
#   plq     a PL/pgSQL AFTER INSERT trigger inserting the key into a table shaped like a queue
#           (primary key only), ON CONFLICT DO UPDATE: a second row per insert (the first design
#           of watched tables);
#   paused  a watch (biomed_ner_watch), paused so that nothing drains it: the watch's own cost
#           (an entry in its partial index of pending rows; inserts fire no trigger).
# Prints each run's tps and the medians' ratios to plain.
#   bench/enqueue_cost.sh [CLIENTS] [SECONDS] [ROUNDS]      Run as root after `cargo pgrx install`.
set -euo pipefail
CLIENTS=${1:-8}; SECS=${2:-6}; ROUNDS=${3:-3}
cd "$(dirname "$0")/.."
. scripts/cluster.sh
CLUSTER_CONF="shared_preload_libraries = 'biomed_ner'" start_cluster 54391
sql() { cluster_psql -d postgres -Atc "$1"; }
sql "CREATE EXTENSION biomed_ner" >/dev/null
WORK=$(mktemp -d /tmp/biomed-ner-enqueue.XXXXXX); chmod 777 "$WORK"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); clients $CLIENTS, $SECS s a run, $ROUNDS rounds"
for t in plain noop plq paused; do
    sql "CREATE TABLE notes_$t (id bigserial PRIMARY KEY, body text, entities jsonb)" >/dev/null
    echo "INSERT INTO notes_$t (body) VALUES ('Patient presented with fever, cough and chest pain; given aspirin 81 mg daily.');" >"$WORK/$t.sql"
done
sql "SELECT biomed_ner_watch('notes_paused', 'body', 'entities'); SELECT biomed_ner_watch_pause('notes_paused')" >/dev/null
sql "CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN RETURN NULL; END\$\$" >/dev/null
sql "CREATE TRIGGER t AFTER INSERT ON notes_noop FOR EACH ROW EXECUTE FUNCTION noop()" >/dev/null
sql "CREATE TABLE q2 (relid regclass NOT NULL, key text NOT NULL,
     enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (relid, key))" >/dev/null
sql "CREATE FUNCTION plq() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN
     INSERT INTO q2 (relid, key) VALUES (TG_RELID, NEW.id::text)
     ON CONFLICT (relid, key) DO UPDATE SET enqueued_at = excluded.enqueued_at; RETURN NULL; END\$\$" >/dev/null
sql "CREATE TRIGGER t AFTER INSERT ON notes_plq FOR EACH ROW EXECUTE FUNCTION plq()" >/dev/null
for r in $(seq "$ROUNDS"); do
    for t in plain noop plq paused; do
        tps=$(runuser -u postgres -- "$PG_BIN/pgbench" -n -h "$PGDATA_DIR" -p "$PG_PORT" -U postgres -c "$CLIENTS" \
            -j "$CLIENTS" -T "$SECS" -f "$WORK/$t.sql" postgres 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
        echo "$t $tps" | tee -a "$WORK/tps.txt"
    done
done
python3 - "$WORK/tps.txt" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    t, v = line.split()
    runs.setdefault(t, []).append(float(v))
med = {t: statistics.median(v) for t, v in runs.items()}
print("medians: " + ", ".join(f"{t} {m:.0f} tps ({m / med['plain']:.3f})" for t, m in med.items()))
PY
rm -rf "$WORK"
