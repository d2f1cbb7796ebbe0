#!/usr/bin/env bash
# The shared inference service under load, on a throw-away PostgreSQL 15 cluster with biomed_ner
# preloaded. First, batching across sessions: CLIENTS sessions annotate the same notes at once,
# and every result must have the entities of backend mode (scores within 1e-5). Then its model
# process killed with SIGKILL: CLIENTS sessions insert notes
# through the trigger (each insert its own transaction, failures recorded with their SQLSTATE)
# while another session runs `SELECT 1` every 50 ms; after a few seconds, while one more session
# annotates a long note, the model process is killed. Checks: the cluster was not restarted and
# the `SELECT 1` session never failed; the long call and any failed insert got SQLSTATE 58000;
# no row is without entities; the service answered again
# within 10 s (a new process, one restart counted); waiting backends showed a wait event.
#   tests/robustness/service.sh [SECONDS] [CLIENTS]    Run as root after `cargo pgrx install`.
set -euo pipefail
SECONDS_RUN=${1:-12}; CLIENTS=${2:-8}
cd "$(dirname "$0")/../.."
. scripts/cluster.sh
MODEL=${BIOMED_NER_FUZZ_MODEL-$(scripts/fixtures-for-postgres)/v3_base_like}
CLUSTER_CONF="biomed_ner.model = '$MODEL'" start_cluster 54361 -c shared_preload_libraries=biomed_ner
. tests/robustness/lib.sh
sql() { cluster_psql -d postgres -Atc "$1"; }
started() { sql "SELECT pg_postmaster_start_time()"; }
sql "CREATE EXTENSION biomed_ner;
     CREATE TABLE notes (id bigserial PRIMARY KEY, client int, body text, entities jsonb,
                         at timestamptz DEFAULT clock_timestamp());
     CREATE TRIGGER annotate BEFORE INSERT ON notes FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('body', 'entities');
     CREATE TABLE failures (client int, sqlstate text, message text, at timestamptz DEFAULT clock_timestamp());
     CREATE TABLE pings (at timestamptz);
     CREATE TABLE waits (at timestamptz, waiting int);
     CREATE PROCEDURE load(client int, seconds float8) LANGUAGE plpgsql AS \$\$
     DECLARE stop timestamptz := clock_timestamp() + seconds * interval '1 second';
     BEGIN
       WHILE clock_timestamp() < stop LOOP
         BEGIN
           INSERT INTO notes (client, body) VALUES (client,
             'Patient ' || (random() * 1000)::int || ' had fever, cough and chest pain; aspirin 81 mg daily.');
         EXCEPTION WHEN OTHERS THEN
           INSERT INTO failures (client, sqlstate, message) VALUES (client, SQLSTATE, SQLERRM);
           PERFORM pg_sleep(0.05);
         END;
         COMMIT;
       END LOOP;
     END \$\$;
     CREATE PROCEDURE ping(seconds float8) LANGUAGE plpgsql AS \$\$
     DECLARE stop timestamptz := clock_timestamp() + seconds * interval '1 second';
     BEGIN
       WHILE clock_timestamp() < stop LOOP
         PERFORM 1;
         INSERT INTO pings VALUES (clock_timestamp());
         INSERT INTO waits SELECT clock_timestamp(), count(*) FROM pg_stat_activity
           WHERE wait_event_type = 'Extension' AND query LIKE 'CALL load%';
         COMMIT;
         PERFORM pg_sleep(0.05);
       END LOOP;
     END \$\$;" >/dev/null
cluster_psql -d postgres -f "$(helpers_sql)" >/dev/null
t0=$(started)

# 1. Batching across sessions gives the entities of backend mode.
sql "CREATE TABLE batch_notes AS SELECT i AS id, 'Patient ' || i || repeat(' had fever and chest pain', i % 7 + 1)
         || '; aspirin ' || i || ' mg daily, 😷 café.' AS body FROM generate_series(1, 40) i;
     CREATE TABLE batch_out (client int, id int, entities jsonb)" >/dev/null
batches0=$(sql "SELECT biomed_ner_service()->>'batches'"); notes0=$(sql "SELECT biomed_ner_service()->>'notes_annotated'")
for c in $(seq "$CLIENTS"); do
    sql "INSERT INTO batch_out SELECT $c, id, biomed_ner(body) FROM batch_notes" >/dev/null &
done
wait
sql "SET biomed_ner.execution = 'backend'; CREATE TABLE batch_ref AS SELECT id, biomed_ner(body) AS entities FROM batch_notes" >/dev/null
sql "SELECT 'cross-session batching: ' || count(*) || ' results, ' || count(*) FILTER (WHERE o.entities = r.entities)
        || ' bit-identical to backend mode, notes per batch '
        || round(((s->>'notes_annotated')::numeric - $notes0) / nullif((s->>'batches')::numeric - $batches0, 0), 2)
     FROM batch_out o JOIN batch_ref r USING (id), biomed_ner_service() s GROUP BY s"
check "cross-session batches: entities of backend mode, scores within 1e-5" \
    "$(sql "SELECT count(*) = $CLIENTS * 40 AND bool_and(same_entities(o.entities, r.entities)) FROM batch_out o JOIN batch_ref r USING (id)")"
check "cross-session batches: notes of several sessions per batch" \
    "$(sql "SELECT ((s->>'notes_annotated')::numeric - $notes0) / nullif((s->>'batches')::numeric - $batches0, 0) > 1.5 FROM biomed_ner_service() s")"

# 2. SIGKILL of the model process under load.
old_pid=$(sql "SELECT biomed_ner_service()->>'pid'")
pids=()
for c in $(seq "$CLIENTS"); do
    sql "CALL load($c, $SECONDS_RUN)" >/dev/null & pids+=($!)
done
sql "CALL ping($SECONDS_RUN + 1)" >/dev/null & ping=$!
sleep $((SECONDS_RUN / 3))
# A long call (32 notes of 30 KB: 32 requests, one after the other), so that at least one call is surely in flight at the kill (the short ones of the
# load can all be between requests, committing).
(cluster_psql -d postgres -v VERBOSITY=verbose -Atc "SELECT cardinality(biomed_ner(ARRAY(SELECT repeat('Fever and chest pain, aspirin 81 mg. ', 800) FROM generate_series(1, 32))))" \
    >"$PGDATA_DIR/long.out" 2>&1 || true) & long=$!
sleep 0.3
killed_at=$(sql "SELECT clock_timestamp()")
kill -9 "$old_pid"
echo "killed model process $old_pid at $killed_at"
for p in "${pids[@]}"; do wait "$p"; done
wait "$long"
echo "the long call in flight: $(head -c 200 "$PGDATA_DIR/long.out" | tr '\n' ' ')"
ping_ok=t; wait "$ping" || ping_ok=f

sql "SELECT 'rows ' || count(*) || ', failed calls ' || (SELECT count(*) FROM failures) || ' ('
        || coalesce((SELECT string_agg(DISTINCT sqlstate, ', ') FROM failures), 'none') || '), pings '
        || (SELECT count(*) FROM pings) FROM notes"
sql "SELECT DISTINCT sqlstate || ': ' || message FROM failures"
check "cluster not restarted" "$([ "$t0" = "$(started)" ] && echo t || echo f)"
check "server log: no backend crash, no reinitialization" \
    "$(grep -qE 'was terminated by signal|terminating any other active server processes|reinitializing' "$PGDATA_DIR/server.log" && echo f || echo t)"
check "SELECT 1 session never failed" "$ping_ok"
check "the calls in flight failed with SQLSTATE 58000 (the long one, and any of the load's)" \
    "$(grep -q '^ERROR:  58000' "$PGDATA_DIR/long.out" && sql "SELECT coalesce(bool_and(sqlstate = '58000'), true) FROM failures")"
check "no row without entities" "$(sql "SELECT count(*) = 0 FROM notes WHERE entities IS NULL")"
recovery=$(sql "SELECT round(extract(epoch FROM min(at) - '$killed_at'::timestamptz)::numeric, 2) FROM notes WHERE at > '$killed_at'::timestamptz")
echo "first note annotated after the kill: ${recovery:-never} s later"
check "service answers again within 10 s" "$(sql "SELECT coalesce($recovery < 10, false)" 2>/dev/null || echo f)"
check "a new model process, one restart counted" \
    "$(sql "SELECT (s->>'pid') <> '$old_pid' AND (s->>'restarts')::int = 1 AND s->>'state' = 'ready' FROM biomed_ner_service() s")"
check "waiting backends show wait event Extension" "$(sql "SELECT max(waiting) > 0 FROM waits")"
summary service
