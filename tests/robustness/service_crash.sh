#!/usr/bin/env bash
# The shared inference service under load, and its model process killed with SIGKILL: on a
# throw-away PostgreSQL 15 cluster with biomed_ner preloaded, CLIENTS sessions insert notes
# through the trigger (each insert its own transaction, failures recorded with their SQLSTATE)
# while another session runs `SELECT 1` every 50 ms; after a few seconds the model process is
# killed. Checks: the cluster was not restarted and the `SELECT 1` session never failed; the
# failed calls all have SQLSTATE 58000; no row is without entities; the service answered again
# within 10 s (a new process, one restart counted); waiting backends showed a wait event.
#   tests/robustness/service_crash.sh [SECONDS] [CLIENTS]    Run as root after `cargo pgrx install`.
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
t0=$(started)
old_pid=$(sql "SELECT biomed_ner_service()->>'pid'")
pids=()
for c in $(seq "$CLIENTS"); do
    sql "CALL load($c, $SECONDS_RUN)" >/dev/null & pids+=($!)
done
sql "CALL ping($SECONDS_RUN + 1)" >/dev/null & ping=$!
sleep $((SECONDS_RUN / 3))
killed_at=$(sql "SELECT clock_timestamp()")
kill -9 "$old_pid"
echo "killed model process $old_pid at $killed_at"
for p in "${pids[@]}"; do wait "$p"; done
ping_ok=t; wait "$ping" || ping_ok=f

sql "SELECT 'rows ' || count(*) || ', failed calls ' || (SELECT count(*) FROM failures) || ' ('
        || coalesce((SELECT string_agg(DISTINCT sqlstate, ', ') FROM failures), 'none') || '), pings '
        || (SELECT count(*) FROM pings) FROM notes"
sql "SELECT DISTINCT sqlstate || ': ' || message FROM failures"
check "cluster not restarted" "$([ "$t0" = "$(started)" ] && echo t || echo f)"
check "server log: no backend crash, no reinitialization" \
    "$(grep -qE 'was terminated by signal|terminating any other active server processes|reinitializing' "$PGDATA_DIR/server.log" && echo f || echo t)"
check "SELECT 1 session never failed" "$ping_ok"
check "failed calls have SQLSTATE 58000 and there are some" \
    "$(sql "SELECT count(*) > 0 AND bool_and(sqlstate = '58000') FROM failures")"
check "no row without entities" "$(sql "SELECT count(*) = 0 FROM notes WHERE entities IS NULL")"
recovery=$(sql "SELECT round(extract(epoch FROM min(at) - '$killed_at'::timestamptz)::numeric, 2) FROM notes WHERE at > '$killed_at'::timestamptz")
echo "first note annotated after the kill: ${recovery:-never} s later"
check "service answers again within 10 s" "$(sql "SELECT coalesce($recovery < 10, false)" 2>/dev/null || echo f)"
check "a new model process, one restart counted" \
    "$(sql "SELECT (s->>'pid') <> '$old_pid' AND (s->>'restarts')::int = 1 AND s->>'state' = 'ready' FROM biomed_ner_service() s")"
check "waiting backends show wait event Extension" "$(sql "SELECT max(waiting) > 0 FROM waits")"
summary service_crash
