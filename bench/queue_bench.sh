#!/usr/bin/env bash
# Watched tables against the synchronous trigger, side by side in one run on one throw-away
# PostgreSQL 15 cluster (biomed_ner preloaded, a queue worker for database postgres, the bundled
# model, default durability settings):
#   1. CLIENTS pgbench clients inserting short clinical notes (the 240 sentences of
#      bench/make_base_model.py, or generated ones) for SECONDS into a table with no trigger, one
#      with biomed_ner_annotate, and one with a watch: insert throughput, p99 latency, and for
#      the watch the time until its queue is empty after the run; then whether every watched row
#      has the entities of biomed_ner(body) (types, spans, words; scores within 1e-5). The runs
#      without trigger and with the watch alternate ROUNDS times (the queue worker drains the
#      watched table meanwhile, at biomed_ner.queue_nice), and the ratio of their medians is the
#      figure: run to run, throughput on a small machine varies by 10% or more.
#   2. Backfill of a table of ROWS notes: a watch's backfill against
#      UPDATE ... FROM biomed_ner_bulk(...): rows per second of each.
#   bench/queue_bench.sh [SENTENCES_JSONL] [CLIENTS] [SECONDS] [ROWS] [ROUNDS]
# Run as root after `cargo pgrx install --release`.
set -euo pipefail
NOTES=${1:-}; CLIENTS=${2:-8}; SECS=${3:-20}; ROWS=${4:-100000}; ROUNDS=${5:-5}
cd "$(dirname "$0")/.."
. scripts/cluster.sh
WORK=$(mktemp -d /tmp/biomed-ner-queue-bench.XXXXXX); chmod 777 "$WORK"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p')"
echo "clients $CLIENTS, $SECS s per insert run, $ROUNDS rounds, backfill of $ROWS rows, bundled model"
CLUSTER_CONF="shared_preload_libraries = 'biomed_ner'
biomed_ner.queue_databases = 'postgres'" start_cluster 54373
sql() { cluster_psql -d postgres -Atc "$1"; }
cluster_psql -d postgres -c "CREATE EXTENSION biomed_ner" >/dev/null
cluster_psql -d postgres < tests/pg_regress/helpers.sql >/dev/null
if [ -n "$NOTES" ]; then
    cp "$NOTES" "$WORK/notes.jsonl"; chmod a+r "$WORK/notes.jsonl"
    cluster_psql -d postgres -v notes="$WORK/notes.jsonl" -v table=sentences < bench/load_sentences.sql >/dev/null
else
    sql "CREATE TABLE sentences (id bigint PRIMARY KEY, body text)" >/dev/null
    sql "INSERT INTO sentences SELECT i, 'Patient ' || i || ' presented with fever, cough and chest pain; given aspirin '
         || (i % 300) || ' mg daily.' FROM generate_series(1, 240) i" >/dev/null
fi
n_sentences=$(sql "SELECT count(*) FROM sentences")
for t in plain trigger watched paused; do
    sql "CREATE TABLE notes_$t (id bigserial PRIMARY KEY, body text, entities jsonb)" >/dev/null
    echo "\\set i random(1, $n_sentences)
INSERT INTO notes_$t (body) SELECT body FROM sentences WHERE id = :i;" > "$WORK/insert_$t.sql"
done
sql "CREATE TRIGGER annotate BEFORE INSERT OR UPDATE ON notes_trigger FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('body', 'entities')" >/dev/null
sql "SELECT biomed_ner_watch('notes_watched', 'body', 'entities')" >/dev/null
# A paused watch: its rows stay pending and nothing drains them, the watch's own cost.
sql "SELECT biomed_ner_watch('notes_paused', 'body', 'entities'); SELECT biomed_ner_watch_pause('notes_paused')" >/dev/null
sql "SELECT count(biomed_ner(body)) FROM sentences" >/dev/null  # the service loads the model

run() { # TABLE LABEL
    rm -f "$WORK"/log.*
    local start; start=$(date +%s)
    (cd "$WORK" && runuser -u postgres -- "$PG_BIN/pgbench" -n -h "$PGDATA_DIR" -p "$PG_PORT" -U postgres \
        -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" -f "$WORK/insert_$1.sql" -l --log-prefix="$WORK/log" postgres >"$WORK/pgbench.out" 2>&1) \
        || { cat "$WORK/pgbench.out"; return 1; }
    cat "$WORK"/log.* | python3 bench/pgbench_summary.py "$2" "$start" 0 "$SECS"
}
echo "== inserts"
run trigger "INSERT, biomed_ner_annotate trigger"
for r in $(seq "$ROUNDS"); do
    run plain "INSERT, no trigger (round $r)" | tee -a "$WORK/plain.txt"
    run watched "INSERT, watched table (round $r)" | tee -a "$WORK/watched.txt"
    run paused "INSERT, watched table, watch paused (round $r)" | tee -a "$WORK/paused.txt"
done
python3 - "$WORK/plain.txt" "$WORK/watched.txt" "$WORK/paused.txt" <<'PY'
import statistics, sys
tps = lambda f: [float(l.split("tx/s")[0].split()[-1]) for l in open(f)]
plain, watched, paused = (statistics.median(tps(f)) for f in sys.argv[1:4])
print(f"median of {len(tps(sys.argv[1]))} rounds: no trigger {plain:.0f} tx/s, watched {watched:.0f} tx/s, "
      f"watch paused {paused:.0f} tx/s: watched/no trigger = {watched / plain:.3f}, paused/no trigger = {paused / plain:.3f}")
PY
# While the queue drains: one session's biomed_ner calls, with the queue's inference at
# queue_nice 10 (the default) and at 0, alternately.
echo "\\set i random(1, $n_sentences)
SELECT biomed_ner(body) FROM sentences WHERE id = :i;" > "$WORK/call.sql"
for nice in 10 0 10 0; do
    sql "ALTER SYSTEM SET biomed_ner.queue_nice = $nice" >/dev/null; sql "SELECT pg_reload_conf()" >/dev/null; sleep 2
    echo "one session's biomed_ner(body) while the queue drains, queue_nice $nice: $(cd "$WORK" && runuser -u postgres -- "$PG_BIN/pgbench" -n -h "$PGDATA_DIR" -p "$PG_PORT" -U postgres \
        -c 1 -T 8 -f "$WORK/call.sql" postgres 2>&1 | sed -n 's/^latency average = \(.*\)/\1 average/p')"
done
sql "ALTER SYSTEM RESET biomed_ner.queue_nice" >/dev/null; sql "SELECT pg_reload_conf()" >/dev/null
t0=$(date +%s.%N)
pending=$(sql "SELECT pending FROM biomed_ner_queue_status WHERE table_name = 'notes_watched'::regclass")
for _ in $(seq 36000); do [ "$(sql "SELECT pending = 0 FROM biomed_ner_queue_status WHERE table_name = 'notes_watched'::regclass")" = t ] && break; sleep 0.1; done
echo "watched table: $pending rows queued at the end of the run, queue empty $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s later"
# Every watched row's text is one of the sentences: biomed_ner of each sentence once is the reference.
sql "SELECT 'watched rows: ' || count(*) || ', with the entities of biomed_ner(body): ' || count(*) FILTER (WHERE same_entities(w.entities, s.e))
     || ', bit-identical: ' || count(*) FILTER (WHERE w.entities = s.e)
     FROM notes_watched w JOIN (SELECT DISTINCT body, biomed_ner(body) AS e FROM sentences) s USING (body)"
pid=$(sql "SELECT biomed_ner_service()->>'pid'")
echo "threads of the model process (pid $pid) by nice value: $(ps -L -o ni=,comm= -p "$pid" | sed 's/-[0-9]*$//' | sort | uniq -c | awk '{printf "%s x %s at nice %s; ", $1, $3, $2}')"

echo "== backfill of $ROWS rows"
sql "CREATE TABLE backfill_watch AS SELECT i::bigint AS id, s.body, NULL::jsonb AS entities
     FROM generate_series(1, $ROWS) i JOIN sentences s ON s.id = 1 + i % $n_sentences;
     ALTER TABLE backfill_watch ADD PRIMARY KEY (id);
     CREATE TABLE backfill_bulk AS SELECT * FROM backfill_watch; ALTER TABLE backfill_bulk ADD PRIMARY KEY (id)" >/dev/null
t0=$(date +%s.%N)
sql "SELECT biomed_ner_watch('backfill_watch', 'body', 'entities')" >/dev/null
for _ in $(seq 72000); do
    [ "$(sql "SELECT pending = 0 FROM biomed_ner_queue_status WHERE table_name = 'backfill_watch'::regclass")" = t ] && break
    sleep 0.1
done
t=$(python3 -c "print($(date +%s.%N) - $t0)")
echo "watch backfill: $(python3 -c "print(f'{$t:.1f} s, {$ROWS / $t:.0f} rows/s')")"
t0=$(date +%s.%N)
sql "UPDATE backfill_bulk n SET entities = b.entities FROM biomed_ner_bulk('SELECT id, body FROM backfill_bulk') b WHERE n.id = b.id" >/dev/null
t=$(python3 -c "print($(date +%s.%N) - $t0)")
echo "UPDATE ... FROM biomed_ner_bulk: $(python3 -c "print(f'{$t:.1f} s, {$ROWS / $t:.0f} rows/s')")"
stop_cluster
rm -rf "$WORK"
