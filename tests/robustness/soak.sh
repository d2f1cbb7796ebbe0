#!/usr/bin/env bash
# Soak: pgbench with 8 clients inserting notes into a table with the biomed_ner_annotate
# trigger for SECONDS (default 300), on a throw-away PostgreSQL 15 cluster with the bundled
# model. Reports transactions, errors, rows left without entities, and the client backends'
# private memory (RssAnon) sampled every 2 s: no leak means the mean of the last third of the
# samples within 5% of the mean of the first third (single samples move by a third either way
# with the notes each backend has just annotated and when it last handed memory back, so the
# means need many of them).
# With --service, biomed_ner is preloaded and the shared inference service annotates (one model
# process of biomed_ner.threads one per core): the same, with the model process's private memory
# sampled and checked as well (the backends then hold no model).
#   tests/robustness/soak.sh [--service] [SECONDS] [CLIENTS]     Run as root after `cargo pgrx install`.
set -euo pipefail
cd "$(dirname "$0")/../.."
service=; if [ "${1:-}" = --service ]; then service=1; shift; fi
DURATION=${1:-300}; CLIENTS=${2:-8}; WARMUP=$((DURATION / 10 > 20 ? DURATION / 10 : 20))
. scripts/cluster.sh
export PGCLIENTENCODING=UTF8
if [ -n "$service" ]; then
    CLUSTER_THREADS=$(nproc) start_cluster 54361 -c max_connections=40 -c shared_preload_libraries=biomed_ner
else
    CLUSTER_THREADS=1 start_cluster 54361 -c max_connections=40
fi
. tests/robustness/lib.sh
cluster_psql -d postgres -c "CREATE DATABASE soak" >/dev/null
cluster_psql -d soak -c "CREATE EXTENSION biomed_ner" -f "$(helpers_sql)" >/dev/null
# In service mode every call must go to the service (a call it cannot take fails, 55000).
[ -z "$service" ] || cluster_psql -d soak -c "ALTER DATABASE soak SET biomed_ner.execution = 'service'" >/dev/null
# Short clinical sentences, and every tenth a hostile note (soak_note, tests/robustness/notes.sql).
cluster_psql -d soak -c "
    CREATE TABLE source AS SELECT i AS id, soak_note(i) AS body FROM generate_series(1, 10000) i;
    CREATE TABLE notes (id bigserial PRIMARY KEY, body text, entities jsonb);
    CREATE TRIGGER annotate BEFORE INSERT OR UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('body', 'entities');" >/dev/null
cat > "$PGDATA_DIR/insert.sql" <<'SQL'
\set n random(1, 10000)
INSERT INTO notes (body) SELECT body FROM source WHERE id = :n;
SQL
chown postgres "$PGDATA_DIR/insert.sql"
backends_rss() { # summed private resident memory (RssAnon, kB; shared buffers not counted) of the client backends
    local s=0 n=0 pid
    for pid in $(ps -u postgres -o pid=,args= | awk '/postgres: postgres soak .*\[local\]/ { print $1 }'); do
        s=$((s + $(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0))); n=$((n + 1))
    done
    echo "$s $n"
}
model_rss() { # private resident memory (kB) of the service's model processes, the supervisor's children
    local sup s=0 pid
    sup=$(ps -u postgres -o pid=,args= | awk '/biomed_ner inference service/ { print $1; exit }')
    for pid in $(ps -o pid= --ppid "${sup:-0}"); do
        s=$((s + $(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)))
    done
    echo "$s"
}
runuser -u postgres -- /usr/lib/postgresql/15/bin/pgbench -n -h "$PGDATA_DIR" -p "$PG_PORT" -c "$CLIENTS" -j 2 -T "$DURATION" \
    -P 30 -f "$PGDATA_DIR/insert.sql" soak > "$PGDATA_DIR/pgbench.log" 2>&1 &
bench=$!
sleep "$WARMUP"
read -r rss_warm n_warm <<<"$(backends_rss)"
samples="$rss_warm"; model_samples=$([ -z "$service" ] || model_rss)
while kill -0 $bench 2>/dev/null; do
    sleep 2
    read -r rss n <<<"$(backends_rss)"
    [ "${n:-0}" = "$CLIENTS" ] && { samples="$samples $rss"; rss_end=$rss; }
    [ -z "$service" ] || model_samples="$model_samples $(model_rss)"
done
status=0; wait $bench || status=$?
cat "$PGDATA_DIR/pgbench.log" | grep -E "^(number of|latency|tps|progress)" || true
rows=$(cluster_psql -d soak -Atc "SELECT count(*) FROM notes")
missing=$(cluster_psql -d soak -Atc "SELECT count(*) FROM notes WHERE entities IS NULL")
wrong=$(cluster_psql -d soak -Atc "SELECT count(*) FROM notes WHERE NOT spans_ok(body, entities)")
errors=$(grep -cE '^ERROR|ERROR:' "$PGDATA_DIR/server.log" || true)
crashes=$(grep -cE 'terminated by signal|was terminated' "$PGDATA_DIR/server.log" || true)
thirds() { # SAMPLES...: the change of the last third's mean from the first third's, in %
    echo "$@" | awk '{ k = int(NF / 3); if (k < 1) k = 1; for (i = 1; i <= k; i++) a += $i; for (i = NF - k + 1; i <= NF; i++) b += $i; printf "%.1f", 100 * (b - a) / a }'
}
under_5() { awk "BEGIN { print ($1 < 5) ? \"t\" : \"f\" }"; } # PERCENT: t when under 5
growth=$(thirds $samples)
echo "soak: $DURATION s, $CLIENTS clients, pgbench exit $status: $rows rows, $missing without entities, $wrong with bad spans, $errors errors, $crashes crashes"
echo "soak: client backends' private memory after ${WARMUP} s warm-up $((rss_warm / 1024)) MB ($n_warm backends), at the end $(( ${rss_end:-$rss_warm} / 1024)) MB; last third vs first third of the $(echo $samples | wc -w) samples: ${growth}%"
echo "soak: samples, kB: $samples"
check "no failed transaction, row without entities, bad span, error or crash" \
    "$([ "$status" = 0 ] && [ "$missing" = 0 ] && [ "$wrong" = 0 ] && [ "$errors" = 0 ] && [ "$crashes" = 0 ] && echo t || echo f)"
check "private memory within 5% (last third vs first third of the samples)" "$(under_5 "$growth")"
if [ -n "$service" ]; then
    model_growth=$(thirds $model_samples)
    echo "soak: the model process's private memory $(($(echo $model_samples | cut -d' ' -f1) / 1024)) MB after warm-up, $(($(echo $model_samples | awk '{ print $NF }') / 1024)) MB at the end; last third vs first third: ${model_growth}%"
    echo "soak: model process samples, kB: $model_samples"
    check "the model process's private memory within 5% (last third vs first third)" "$(under_5 "$model_growth")"
    check "the service ready, never restarted, and it annotated" \
        "$(cluster_psql -d soak -Atc "SELECT (s->>'state') = 'ready' AND (s->>'restarts')::int = 0 AND (s->>'notes_annotated')::bigint > 0 FROM biomed_ner_service() s")"
fi
summary soak
