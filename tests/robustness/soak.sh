#!/usr/bin/env bash
# Soak: pgbench with 8 clients inserting notes into a table with the biomed_ner_annotate
# trigger for SECONDS (default 300), on a throw-away PostgreSQL 15 cluster with the bundled
# model. Reports transactions, errors, rows left without entities, and the client backends'
# private memory (RssAnon) sampled every 2 s: no leak means the mean of the last third of the
# samples within 5% of the mean of the first third (single samples move by a third either way
# with the notes each backend has just annotated and when it last handed memory back, so the
# means need many of them).
#   tests/robustness/soak.sh [SECONDS] [CLIENTS]     Run as root after `cargo pgrx install`.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-300}; CLIENTS=${2:-8}; WARMUP=$((DURATION / 10 > 20 ? DURATION / 10 : 20))
. scripts/cluster.sh
export PGCLIENTENCODING=UTF8
CLUSTER_THREADS=1 start_cluster 54361 -c max_connections=40
. tests/robustness/lib.sh
cluster_psql -d postgres -c "CREATE DATABASE soak" >/dev/null
cluster_psql -d soak -c "CREATE EXTENSION biomed_ner" -f "$(helpers_sql)" >/dev/null
# Short clinical sentences, and every tenth a hostile note.
cluster_psql -d soak -c "
    CREATE TABLE source AS SELECT i AS id, CASE WHEN i % 10 = 0 THEN fuzz_note(i) ELSE
        (ARRAY['A 48-year-old female presented with vaginal bleeding and abnormal Pap smears.',
               'CT of the chest showed a 3 cm mass in the right upper lobe.',
               'He was started on aspirin 81 mg daily and atorvastatin 40 mg.',
               'Laboratory tests revealed hemoglobin of 9.8 g/dL and a platelet count of 98,000/µL.',
               'The patient denied fever, chills, or night sweats.'])[1 + i % 5] || ' (' || i || ')' END AS body
    FROM generate_series(1, 10000) i;
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
runuser -u postgres -- /usr/lib/postgresql/15/bin/pgbench -n -h "$PGDATA_DIR" -p "$PG_PORT" -c "$CLIENTS" -j 2 -T "$DURATION" \
    -P 30 -f "$PGDATA_DIR/insert.sql" soak > "$PGDATA_DIR/pgbench.log" 2>&1 &
bench=$!
sleep "$WARMUP"
read -r rss_warm n_warm <<<"$(backends_rss)"
samples="$rss_warm"
while kill -0 $bench 2>/dev/null; do
    sleep 2
    read -r rss n <<<"$(backends_rss)"
    [ "${n:-0}" = "$CLIENTS" ] && { samples="$samples $rss"; rss_end=$rss; }
done
status=0; wait $bench || status=$?
cat "$PGDATA_DIR/pgbench.log" | grep -E "^(number of|latency|tps|progress)" || true
rows=$(cluster_psql -d soak -Atc "SELECT count(*) FROM notes")
missing=$(cluster_psql -d soak -Atc "SELECT count(*) FROM notes WHERE entities IS NULL")
wrong=$(cluster_psql -d soak -Atc "SELECT count(*) FROM notes WHERE NOT spans_ok(body, entities)")
errors=$(grep -cE '^ERROR|ERROR:' "$PGDATA_DIR/server.log" || true)
crashes=$(grep -cE 'terminated by signal|was terminated' "$PGDATA_DIR/server.log" || true)
growth=$(echo $samples | awk '{ k = int(NF / 3); if (k < 1) k = 1; for (i = 1; i <= k; i++) a += $i; for (i = NF - k + 1; i <= NF; i++) b += $i; printf "%.1f", 100 * (b - a) / a }')
echo "soak: $DURATION s, $CLIENTS clients, pgbench exit $status: $rows rows, $missing without entities, $wrong with bad spans, $errors errors, $crashes crashes"
echo "soak: client backends' private memory after ${WARMUP} s warm-up $((rss_warm / 1024)) MB ($n_warm backends), at the end $(( ${rss_end:-$rss_warm} / 1024)) MB; last third vs first third of the $(echo $samples | wc -w) samples: ${growth}%"
echo "soak: samples, kB: $samples"
check "no failed transaction, row without entities, bad span, error or crash" \
    "$([ "$status" = 0 ] && [ "$missing" = 0 ] && [ "$wrong" = 0 ] && [ "$errors" = 0 ] && [ "$crashes" = 0 ] && echo t || echo f)"
check "private memory within 5% (last third vs first third of the samples)" "$(awk "BEGIN { print ($growth < 5) ? \"t\" : \"f\" }")"
summary soak
