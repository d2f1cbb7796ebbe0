#!/usr/bin/env bash
# An ordinary role against the extension, where it takes a fresh session, a queue worker or the
# shared inference service (the rest is tests/pg_regress/sql/hostile.sql), on a throw-away cluster:
#  1. without preloading: a model folder set before the library is loaded, then the library
#     loaded by a SECURITY DEFINER function of the extension (a queue drain): refused, the file's
#     content and the path's existence never shown, the setting back at the server's value;
#  2. with biomed_ner preloaded and a queue worker: a model load error in biomed_ner_service()
#     is redacted for a role that may not read server files; a table owner's tables whose batches
#     fail (forced row-level security, a trigger that raises a cancel's SQLSTATE, one that sleeps
#     past biomed_ner.queue_batch_timeout) do not stop or hold the queue of another table, nor
#     the worker; a terminated worker comes back; the database's owner cannot slip a function into
#     the worker's own queries through the database's search_path; a fast shutdown in the middle of
#     a backfill is prompt;
#  3. one role's windows (a stride of 509 of 512) and one role's very long note do not hold
#     another session's call through the service: they run in the role's own backend.
# No server log may show a crashed process.
#   tests/robustness/hostile.sh       Run as root after `cargo pgrx install`.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/cluster.sh
MODEL=$(scripts/fixtures-for-postgres)/v3_base_like
start_cluster 54372
. tests/robustness/lib.sh
sql() { cluster_psql -d q -Atc "$1"; }
as_alice() { runuser -u postgres -- "$PG_BIN/psql" -X -q -h "$PGDATA_DIR" -p "$PG_PORT" -U alice -d q -At "$@" 2>&1; }
now() { date +%s.%N; }
restart() {
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast stop >/dev/null
    runuser -u postgres -- env -u RUST_BACKTRACE RAYON_NUM_THREADS=2 "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w \
        -o "-p $PG_PORT -k $PGDATA_DIR -c listen_addresses=''" start >/dev/null
}
worker_pid() { sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'biomed_ner queue' AND datname = 'q'"; }
worst_short_call() { # after 1 s, the longest of five short calls through the service, in seconds
    local worst=0 t t0
    sleep 1
    for _ in 1 2 3 4 5; do
        t0=$(now); sql "SELECT biomed_ner('fever') IS NOT NULL" >/dev/null; t=$(echo "$(now) - $t0" | bc)
        worst=$(echo "if ($t > $worst) $t else $worst" | bc)
        sleep 0.3
    done
    echo "$worst"
}
wait_for() { # SECONDS SQL: until SQL gives t; prints the seconds it took or 'never'
    local t0; t0=$(now)
    for _ in $(seq $(($1 * 10))); do
        [ "$(sql "$2" 2>/dev/null)" = t ] && { echo "$(now) - $t0" | bc; return 0; }
        sleep 0.1
    done
    echo never
}

# A folder with a secret the server can read and alice may not: its config.json.
# (The fixture's files, so that loading gets as far as reading config.json.)
SECRET=$(mktemp -d /tmp/biomed-ner-secret.XXXXXX)
cp -r "$MODEL/." "$SECRET/"
echo '{"model_type": "the-secret-content"}' >"$SECRET/config.json"
chown -R postgres "$SECRET"; chmod 700 "$SECRET"; chmod 600 "$SECRET/config.json"
# The database is alice's: its owner is an ordinary role too.
cluster_psql -d postgres -c "CREATE ROLE alice LOGIN" -c "CREATE DATABASE q OWNER alice" >/dev/null
sql "CREATE EXTENSION biomed_ner" >/dev/null
as_alice -c "CREATE TABLE m (id int PRIMARY KEY, body text, e jsonb); INSERT INTO m VALUES (1, 'Fever.')" >/dev/null
# A superuser watches alice's table (the batches must still run as alice).
sql "SELECT biomed_ner_watch('m', 'body', 'e')" >/dev/null

# 1. Settings made before the library is loaded.
for folder in "$SECRET" /nonexistent /root; do
    out=$(as_alice -c "SET biomed_ner.model = '$folder'" -c "SELECT biomed_ner_queue_drain('m')" \
        -c "SELECT coalesce(last_error, '') FROM biomed_ner_queue_status" -c "SELECT 'model=' || current_setting('biomed_ner.model')")
    echo "before load, $folder: $(echo "$out" | tr '\n' ' ' | cut -c1-300)"
    check "set before load ($folder), loaded by a queue drain: no file content, no path probe" \
        "$(grep -qE 'the-secret-content|No such file|ermission denied|58P01' <<<"$out" && echo f || echo t)"
    check "set before load ($folder): refused when the library loads, the setting back at the server's" \
        "$(grep -q 'may set biomed_ner.model to a folder' <<<"$out" && [ "$(echo "$out" | tail -n 1)" = 'model=' ] && echo t || echo f)"
done
# (The control: a superuser may choose the folder, and sees what is wrong with it.)
out=$(cluster_psql -d q -At -c "SET biomed_ner.model = '$SECRET'" -c "SELECT biomed_ner('Fever.')" 2>&1 || true)
check "set before load by a superuser: the folder loads, its error shows the file's content" \
    "$(grep -q 'the-secret-content' <<<"$out" && echo t || echo f)"
out=$(as_alice -c "SET biomed_ner.model = '$SECRET'" -c "SELECT jsonb_array_length(biomed_ner('Fever and cough.')) > 0")
check "set before load, loaded by biomed_ner(): refused, the call runs the server's model" \
    "$(grep -q 'the-secret-content' <<<"$out" && echo f || { [ "$(echo "$out" | tail -n 1)" = t ] && echo t || echo f; })"
sql "SELECT biomed_ner_unwatch('m')" >/dev/null

# 2. Preloaded, with a queue worker for database q; the server's model is the fixture.
cat >>"$PGDATA_DIR/postgresql.conf" <<EOF
shared_preload_libraries = 'biomed_ner'
biomed_ner.model = '$MODEL'
biomed_ner.queue_databases = 'q'
biomed_ner.queue_batch_timeout = 2000
EOF
restart
wait_for 60 "SELECT biomed_ner_service()->>'state' = 'ready'" >/dev/null
# The service's last error, from a model folder whose config.json it cannot parse.
sql "ALTER SYSTEM SET biomed_ner.model = '$SECRET'" >/dev/null; sql "SELECT pg_reload_conf()" >/dev/null
wait_for 30 "SELECT biomed_ner_service()->>'state' = 'failed'" >/dev/null
su_sees=$(sql "SELECT biomed_ner_service()->>'last_error'")
alice_sees=$(as_alice -c "SELECT biomed_ner_service()->>'last_error'")
alice_failure=$(as_alice -c "SELECT biomed_ner_service()->'failure'")
echo "service last_error: superuser sees \"$su_sees\"; alice sees \"$alice_sees\""
check "service: a superuser sees the load error's details" "$(grep -q 'the-secret-content' <<<"$su_sees" && echo t || echo f)"
# (last_error, from every role's calls, is for pg_read_all_stats; the failure of the model's
# load is for every role, in the words that keep the file's content out.)
check "service: alice sees the load error without the file's content" \
    "$(grep -q 'the-secret-content' <<<"$alice_sees $alice_failure" && echo f || { [ -z "$alice_sees" ] && grep -q 'cannot be loaded' <<<"$alice_failure" && echo t || echo "f: $alice_failure"; })"
sql "ALTER SYSTEM RESET biomed_ner.model" >/dev/null; sql "SELECT pg_reload_conf()" >/dev/null
wait_for 60 "SELECT biomed_ner_service()->>'state' = 'ready'" >/dev/null

# A table whose batches always fail (a forced policy that raises) beside a victim table: the
# victim's backlog drains at the worker's pace, and the worker never exits.
as_alice -c "CREATE TABLE trap (id int PRIMARY KEY, body text, e jsonb);
    CREATE TABLE victim (id int PRIMARY KEY, body text, e jsonb);
    SELECT biomed_ner_watch('trap', 'body', 'e'); SELECT biomed_ner_watch('victim', 'body', 'e');
    CREATE FUNCTION boom() RETURNS boolean LANGUAGE plpgsql AS \$\$ BEGIN RAISE EXCEPTION 'boom'; END \$\$;
    ALTER TABLE trap ENABLE ROW LEVEL SECURITY; ALTER TABLE trap FORCE ROW LEVEL SECURITY;
    CREATE POLICY p ON trap USING (boom())" >/dev/null
# Two more of alice's tables: a trigger that raises a cancel's SQLSTATE (which no EXCEPTION WHEN
# OTHERS catches), and one that sleeps past biomed_ner.queue_batch_timeout (2 s here).
as_alice -c "CREATE TABLE cancels (id int PRIMARY KEY, body text, e jsonb);
    CREATE FUNCTION cancel_it() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RAISE EXCEPTION 'not a cancel' USING ERRCODE = '57014'; END \$\$;
    CREATE TRIGGER t BEFORE UPDATE ON cancels FOR EACH ROW EXECUTE FUNCTION cancel_it();
    CREATE TABLE slow (id int PRIMARY KEY, body text, e jsonb);
    CREATE FUNCTION sleep_it() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_sleep(60); RETURN NEW; END \$\$;
    CREATE TRIGGER t BEFORE UPDATE ON slow FOR EACH ROW EXECUTE FUNCTION sleep_it();
    SELECT biomed_ner_watch('cancels', 'body', 'e'); SELECT biomed_ner_watch('slow', 'body', 'e')" >/dev/null
sql "INSERT INTO trap VALUES (1, 'Cough.'); INSERT INTO cancels VALUES (1, 'Rash.'); INSERT INTO slow VALUES (1, 'Fever.')" >/dev/null
pid0=$(worker_pid)
sql "INSERT INTO victim SELECT i, 'Patient ' || i || ' has fever and cough.' FROM generate_series(1, 640) i" >/dev/null
took=$(wait_for 120 "SELECT count(*) = 0 FROM victim WHERE e IS NULL")
sleep 3
echo "failing tables beside: 640 rows of the victim table annotated in $took s; worker $pid0 -> $(worker_pid)"
sql "SELECT table_name, left(last_error, 100) FROM biomed_ner_queue_status WHERE last_error IS NOT NULL ORDER BY 1"
check "failing and slow tables do not hold back another table's queue" "$([ "$took" != never ] && echo t || echo f)"
check "forced row-level security: that table's last_error, its policy never run" \
    "$(sql "SELECT last_error LIKE 'row-level security is forced on%' FROM biomed_ner_queue_status WHERE table_name = 'trap'::regclass")"
check "a trigger raising 57014: that table's last_error" \
    "$(sql "SELECT last_error = '57014: not a cancel' FROM biomed_ner_queue_status WHERE table_name = 'cancels'::regclass")"
check "a batch past biomed_ner.queue_batch_timeout: cancelled, that table's last_error" \
    "$(sql "SELECT last_error LIKE '57014: the batch ran over biomed_ner.queue_batch_timeout%' FROM biomed_ner_queue_status WHERE table_name = 'slow'::regclass")"
check "the status view reads for the table's owner" \
    "$(as_alice -c "SELECT count(*) = 4 FROM biomed_ner_queue_status")"
check "the worker never exited meanwhile" "$([ "$(worker_pid)" = "$pid0" ] && echo t || echo f)"

# A terminated worker comes back (its postmaster restarts it after 5 s) and drains again.
sql "SELECT pg_terminate_backend($pid0)" >/dev/null
sql "INSERT INTO victim VALUES (1001, 'Headache.')" >/dev/null
took=$(wait_for 30 "SELECT e IS NOT NULL FROM victim WHERE id = 1001")
echo "terminated worker $pid0: back as $(worker_pid), the new row annotated $took s after"
check "a terminated queue worker comes back and drains" "$([ "$took" != never ] && echo t || echo f)"

# The database's owner sets its search_path to a schema of functions named as the worker's
# (run as a superuser, each would make her one), then has the worker restarted.
as_alice -c "CREATE SCHEMA evil;
    CREATE FUNCTION evil.grab() RETURNS void LANGUAGE plpgsql AS \$\$ BEGIN EXECUTE 'ALTER ROLE alice SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END \$\$;
    CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS \$\$ BEGIN PERFORM evil.grab(); RETURN pg_catalog.clock_timestamp(); END \$\$;
    CREATE FUNCTION evil.pg_backend_pid() RETURNS int LANGUAGE plpgsql AS \$\$ BEGIN PERFORM evil.grab(); RETURN pg_catalog.pg_backend_pid(); END \$\$;
    CREATE FUNCTION evil.set_config(text, text, boolean) RETURNS text LANGUAGE plpgsql AS \$\$ BEGIN PERFORM evil.grab(); RETURN pg_catalog.set_config(\$1, \$2, \$3); END \$\$;
    CREATE FUNCTION evil.pg_try_advisory_lock(bigint) RETURNS boolean LANGUAGE plpgsql AS \$\$ BEGIN PERFORM evil.grab(); RETURN true; END \$\$;
    ALTER DATABASE q SET search_path = evil, pg_catalog" >/dev/null
sql "SELECT pg_terminate_backend($(worker_pid))" >/dev/null
cluster_psql -d q -Atc "INSERT INTO public.victim VALUES (1002, 'Chest pain.')" >/dev/null
took=$(wait_for 30 "SELECT e IS NOT NULL FROM public.victim WHERE id = 1002")
check "the database's search_path reaches none of the worker's own queries (it drains; alice is no superuser)" \
    "$([ "$took" != never ] && [ "$(sql "SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'")" = f ] && echo t || echo f)"
as_alice -c "ALTER DATABASE q RESET search_path" >/dev/null

# A fast shutdown in the middle of a backfill: prompt.
sql "INSERT INTO victim SELECT i, 'Patient ' || i || ' has dyspnoea, nausea and chest pain radiating to the left arm.' FROM generate_series(2000, 12000) i" >/dev/null
sleep 2
t0=$(now)
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -t 60 stop >/dev/null
stop_s=$(echo "$(now) - $t0" | bc)
echo "fast shutdown during a backfill: $stop_s s"
check "fast shutdown during a backfill within 10 s" "$(echo "$stop_s < 10" | bc | sed 's/1/t/;s/0/f/')"
runuser -u postgres -- env -u RUST_BACKTRACE RAYON_NUM_THREADS=2 "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w \
    -o "-p $PG_PORT -k $PGDATA_DIR -c listen_addresses=''" start >/dev/null
wait_for 60 "SELECT biomed_ner_service()->>'state' = 'ready'" >/dev/null
sql "SELECT biomed_ner_watch_pause('victim')" >/dev/null

# 3. One role's stride attack against another session's short call through the service.
check "a stride over half the window runs in the caller's own backend" \
    "$(as_alice -c "SET biomed_ner.stride = 509" -c "SELECT biomed_ner_info()->>'execution' = 'backend'")"
out=$(as_alice -c "SET biomed_ner.stride = 509" -c "SET biomed_ner.execution = 'service'" -c "SELECT biomed_ner('x')" || true)
check "... and is refused where the service is required" "$(grep -q 'does not serve' <<<"$out" && echo t || echo f)"
for _ in 1 2; do
    (as_alice -c "SET biomed_ner.stride = 509" -c "SET statement_timeout = '10s'" -c "SELECT biomed_ner(repeat('xq', 1500)) IS NOT NULL" >/dev/null || true) &
done
worst=$(worst_short_call)
attacking=$(sql "SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice' AND state = 'active'")
wait
echo "stride attack from two sessions (both still running at the end: $attacking): another session's short call took at most $worst s"
check "stride attack: another session's short call through the service within 1 s" \
    "$([ "$attacking" = 2 ] && echo "$worst < 1" | bc | sed 's/1/t/;s/0/f/' || echo f)"
# A note of almost a million characters (the default biomed_ner.max_chars) from alice.
(as_alice -c "SET statement_timeout = '10s'" -c "SELECT biomed_ner(repeat('Fever and cough. ', 58000)) IS NOT NULL" >/dev/null || true) &
worst=$(worst_short_call)
attacking=$(sql "SELECT count(*) FROM pg_stat_activity WHERE usename = 'alice' AND state = 'active'")
wait
echo "a very long note from another session (still running at the end: $attacking): a short call took at most $worst s"
check "a very long note: another session's short call through the service within 1 s" \
    "$([ "$attacking" = 1 ] && echo "$worst < 1" | bc | sed 's/1/t/;s/0/f/' || echo f)"

check "server log: no crash of a backend or worker" \
    "$(grep -qE 'was terminated by signal|terminating any other active server processes' "$PGDATA_DIR/server.log" && echo f || echo t)"
rm -rf "$SECRET"
summary hostile
