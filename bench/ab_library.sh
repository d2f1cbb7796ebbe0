#!/usr/bin/env bash
# Two builds of the extension's library side by side on one machine: per-row `biomed_ner(body)`
# and `biomed_ner_bulk` over the same notes (the sentences of the MACCROBAT reports in
# data/maccrobat, the bundled model), per backend and through the shared inference service,
# ROUNDS rounds alternating the libraries (A, B, A, B...) so drift falls on both. Each round
# copies one library over the installed biomed_ner.so (the SQL objects are the same) and starts
# a fresh throw-away PostgreSQL 15 cluster for each mode; the first call, which loads the model,
# is left out. Prints seconds per round and the medians, and B's speed relative to A's.
#   bench/ab_library.sh A.so B.so [ROUNDS] [NOTES]      Run as root; restores B at the end.
set -euo pipefail
A=$(realpath "$1"); B=$(realpath "$2"); ROUNDS=${3:-3}; NOTES=${4:-1500}
cd "$(dirname "$0")/.."
. scripts/cluster.sh
LIB="$("$PG_CONFIG" --pkglibdir)/biomed_ner.so"
WORK=$(mktemp -d /tmp/biomed-ner-ab.XXXXXX); chmod 755 "$WORK"
# One note a sentence of at least 20 characters, in report order.
python3 - "$NOTES" >"$WORK/notes.jsonl" <<'EOF'
import glob, json, re, sys
notes = [s for f in sorted(glob.glob('data/maccrobat/*.txt'))
         for s in re.split(r'(?<=[.!?])\s+', open(f).read().replace('\n', ' ')) if len(s) >= 20]
for s in notes[:int(sys.argv[1])]:
    print(json.dumps({"text": s}))
EOF
chmod 644 "$WORK/notes.jsonl"
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(wc -l <"$WORK/notes.jsonl") notes; A=$1 B=$2"
run_mode() { # MODE (backend | service): seconds of per-row and bulk
    local port=54399 opts=""
    [ "$1" = service ] && opts="-c shared_preload_libraries=biomed_ner"
    start_cluster $port $opts
    cluster_psql -d postgres -c "CREATE EXTENSION biomed_ner" \
        -c "CREATE TABLE notes (id serial PRIMARY KEY, body text)" \
        -c "CREATE TEMP TABLE raw (j jsonb)" -c "\\copy raw FROM '$WORK/notes.jsonl' WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')" \
        -c "INSERT INTO notes (body) SELECT j->>'text' FROM raw" -c "ANALYZE notes" >/dev/null
    [ "$1" = service ] && for _ in $(seq 100); do
        [ "$(cluster_psql -d postgres -Atc "SELECT biomed_ner_service()->>'state'")" = ready ] && break; sleep 0.2; done
    cluster_psql -d postgres -At <<'SQL' | tr '\n' ' '
SELECT count(biomed_ner('warm up')) \g /dev/null
SELECT clock_timestamp() AS t0 \gset
SELECT count(biomed_ner(body)) FROM notes \g /dev/null
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000, 1);
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FROM biomed_ner_bulk('SELECT id, body FROM notes', 64) \g /dev/null
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000, 1);
SQL
    echo
    stop_cluster >/dev/null
}
declare -A times
for round in $(seq "$ROUNDS"); do
    for side in A B; do
        lib=$A; [ $side = B ] && lib=$B
        install -m 755 "$lib" "$LIB"
        for mode in backend service; do
            read -r row bulk < <(run_mode $mode)
            echo "round $round $side $mode: per-row $(printf %.2f "$(echo "$row / 1000" | bc -l)") s, bulk $(printf %.2f "$(echo "$bulk / 1000" | bc -l)") s"
            times[$side,$mode,row]+="$row "; times[$side,$mode,bulk]+="$bulk "
        done
    done
done
install -m 755 "$B" "$LIB"
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
for mode in backend service; do
    for what in row bulk; do
        a=$(echo "${times[A,$mode,$what]}" | median); b=$(echo "${times[B,$mode,$what]}" | median)
        printf '%-8s %-5s median A %.2f s, B %.2f s: B at %.3fx A'"'"'s speed\n' $mode $what "$(echo "$a/1000" | bc -l)" "$(echo "$b/1000" | bc -l)" "$(echo "$a/$b" | bc -l)"
    done
done
rm -rf "$WORK"
