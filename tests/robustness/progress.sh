#!/usr/bin/env bash
# biomed_ner_progress seen from other sessions, on a throw-away cluster (PostgreSQL 15 with
# biomed_ner preloaded and a queue worker for database postgres; on 17 and later the same runs
# without preloading). A biomed_ner_bulk over ROWS rows (the bundled model) runs in one session
# while others read the view every 0.3 s: as a role with pg_read_all_stats and as an ordinary
# role. Checks: rows done rise and never fall; the total is the planner's estimate of ROWS; at
# every sample between a quarter and three quarters of the run, the ETA lies within 35% of the
# run's length (plus 3 s) of the time the bulk really ended; the ordinary role sees the run but
# not its rows; the run is gone from the view when it ends and when it is cancelled (57014, the
# server not restarted); the queue worker's batches on a watched table show as 'queue batch' of
# that table, for its owner.
#   tests/robustness/progress.sh [ROWS]    Run as root after `cargo pgrx install`.
set -euo pipefail
ROWS=${1:-20000}
cd "$(dirname "$0")/../.."
. scripts/cluster.sh
CLUSTER_CONF="biomed_ner.queue_databases = 'postgres'
biomed_ner.queue_pause_ms = 0" start_cluster 54363 -c shared_preload_libraries=biomed_ner
. tests/robustness/lib.sh
sql() { cluster_psql -d postgres -Atc "$1"; }
as_role() { cluster_psql -d postgres -U "$1" -Atc "$2"; }
started=$(sql "SELECT pg_postmaster_start_time()")
sql "CREATE EXTENSION biomed_ner;
     CREATE ROLE progress_admin LOGIN IN ROLE pg_read_all_stats;
     CREATE ROLE progress_nobody LOGIN;
     CREATE TABLE notes (id bigint PRIMARY KEY, body text);
     INSERT INTO notes SELECT g, (ARRAY['Patient reports fever and cough for ' || g % 9 || ' days.',
         'No chest pain; aspirin 81 mg daily.', 'A 48-year-old female presented with vaginal bleeding.',
         'CT of the abdomen showed a 3 cm mass in the left kidney.'])[1 + g % 4] FROM generate_series(1, $ROWS) g;
     ANALYZE notes;"
OUT=$(mktemp -d /tmp/biomed-ner-progress.XXXXXX); chmod 777 "$OUT"
trap 'stop_cluster; rm -rf "$OUT"' EXIT

# The bulk, in the background; the view sampled until it ends.
t0=$(date +%s.%N)
(sql "SELECT count(*) FROM biomed_ner_bulk('SELECT id, body FROM notes', 64)" >"$OUT/count" 2>"$OUT/bulk.err"; date +%s.%N >"$OUT/ended") &
bulk=$!
while kill -0 $bulk 2>/dev/null; do
    as_role progress_admin "SELECT extract(epoch FROM clock_timestamp()), rows_done, rows_total, total_is_estimate,
                                   coalesce(extract(epoch FROM eta)::text, ''), notes_per_second, usename
                            FROM biomed_ner_progress WHERE command = 'biomed_ner_bulk'" >>"$OUT/admin" 2>>"$OUT/view.err" || true
    as_role progress_nobody "SELECT command, coalesce(rows_done::text, 'hidden'), coalesce(started::text, 'hidden')
                             FROM biomed_ner_progress WHERE command = 'biomed_ner_bulk'" >>"$OUT/nobody" 2>>"$OUT/view.err" || true
    sleep 0.3
done
wait $bulk || true
t1=$(cat "$OUT/ended")
echo "bulk of $ROWS rows: $(python3 -c "print(round($t1 - $t0, 1))") s, $(wc -l <"$OUT/admin") samples"
check "the bulk annotated every row" "$( [ "$(cat "$OUT/count")" = "$ROWS" ] && echo t || cat "$OUT/bulk.err")"
check "no error reading the view" "$( [ ! -s "$OUT/view.err" ] && echo t || head -3 "$OUT/view.err")"
check "rows done rise, never fall, over 5 samples or more" "$(python3 - "$OUT/admin" <<'EOF'
import sys
done = [int(l.split('|')[1]) for l in open(sys.argv[1]) if l.strip()]
ok = len(done) >= 5 and all(a <= b for a, b in zip(done, done[1:])) and done[-1] > done[0]
print('t' if ok else f'samples {done[:8]}...{done[-3:]}')
EOF
)"
check "the total is the planner's estimate of $ROWS rows" "$(python3 - "$OUT/admin" "$ROWS" <<'EOF'
import sys
rows = int(sys.argv[2])
totals = {(l.split('|')[2], l.split('|')[3]) for l in open(sys.argv[1]) if l.strip()}
ok = all(e == 't' and abs(int(t) - rows) <= rows * 0.05 for t, e in totals)
print('t' if ok and totals else f'totals {totals}')
EOF
)"
check "the ETA is sane: within 35% of the run (+3 s) of the real end, from a quarter to three quarters" "$(python3 - "$OUT/admin" "$ROWS" "$t0" "$t1" <<'EOF'
import sys
rows, t0, t1 = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
bad, n = [], 0
for l in open(sys.argv[1]):
    at, done, total, _, eta, rate, user = l.strip().split('|')
    if not (rows / 4 <= int(done) <= rows * 3 / 4):
        continue
    n += 1
    if not eta or abs(float(eta) - t1) > 0.35 * (t1 - t0) + 3 or float(rate) <= 0:
        bad.append((int(done), eta and round(float(eta) - t1, 1), rate))
print('t' if n >= 2 and not bad else f'{n} samples in range, off: {bad[:5]}')
EOF
)"
check "the run is recorded for the role that ran it" "$(cut -d'|' -f7 "$OUT/admin" | sort -u | tr -d '\n' | sed 's/^postgres$/t/')"
check "an ordinary role sees the run, not its rows or start" \
    "$( [ -s "$OUT/nobody" ] && [ "$(sort -u "$OUT/nobody")" = "biomed_ner_bulk|hidden|hidden" ] && echo t || sort -u "$OUT/nobody" | head -3)"
check "the run is gone from the view when it ends" "$(sql "SELECT count(*) = 0 FROM biomed_ner_progress")"

# Cancelled in the middle: 57014, and no run left.
(sql "SELECT count(*) FROM biomed_ner_bulk('SELECT id, body FROM notes', 64)" >/dev/null 2>"$OUT/cancel.err" || true) &
cancelled=$!
for _ in $(seq 100); do
    [ "$(sql "SELECT coalesce(max(rows_done), 0) > 0 FROM biomed_ner_progress")" = t ] && break
    sleep 0.1
done
sql "SELECT pg_cancel_backend(pid) FROM biomed_ner_progress WHERE command = 'biomed_ner_bulk'" >/dev/null
wait $cancelled
check "a cancelled bulk stops with 57014" "$(grep -q 'canceling statement due to user request' "$OUT/cancel.err" && echo t || cat "$OUT/cancel.err")"
check "a cancelled run is gone from the view" "$(sql "SELECT count(*) = 0 FROM biomed_ner_progress")"

# The queue worker's batches on a watched table owned by another role.
sql "CREATE ROLE progress_owner LOGIN;
     CREATE TABLE watched (id int PRIMARY KEY, body text, entities jsonb);
     ALTER TABLE watched OWNER TO progress_owner;
     INSERT INTO watched SELECT id, body FROM notes WHERE id <= 3000;"
as_role progress_owner "SELECT biomed_ner_watch('watched', 'body', 'entities')" >/dev/null
for _ in $(seq 200); do
    as_role progress_owner "SELECT command, relation, rows_total, usename FROM biomed_ner_progress WHERE command = 'queue batch'" >>"$OUT/queue" || true
    [ "$(sql "SELECT pending = 0 FROM biomed_ner_queue_status")" = t ] && break
    sleep 0.05
done
check "queue batches show for the table's owner: command, table, rows of the batch" \
    "$(grep -q '^queue batch|watched|[1-9][0-9]*|progress_owner$' "$OUT/queue" && echo t || sort -u "$OUT/queue" | head -3)"
check "the server was not restarted" "$( [ "$(sql "SELECT pg_postmaster_start_time()")" = "$started" ] && echo t || echo restarted)"
summary "progress.sh"
