#!/usr/bin/env bash
# Base-sized parity of the extension: SELECT biomed_ner(body) over the parity notes of
# bench/make_base_model.py with biomed_ner.model set to that model folder, compared with the
# Hugging Face pipeline by bench/parity_base.py. Run as root after `cargo pgrx install --release`.
#   bench/sql_parity.sh /tmp/biomed-bench
set -euo pipefail
DIR=$(realpath "$1")
cd "$(dirname "$0")/.."
. scripts/cluster.sh
chmod -R a+rX "$DIR"
start_cluster 54333
OUT=$(mktemp /tmp/biomed-ner-sql-parity.XXXXXX.jsonl); chmod 666 "$OUT"
cluster_psql -d postgres -v model="$DIR/model" -v notes="$DIR/parity.jsonl" -v out="$OUT" <<'SQL'
CREATE EXTENSION biomed_ner;
CREATE TEMP TABLE raw(n serial, line text);
\set copy '\\copy raw(line) FROM ' :'notes' ' WITH (FORMAT csv, DELIMITER E''\\x01'', QUOTE E''\\x02'')'
:copy
SET biomed_ner.model = :'model';
\pset format unaligned
\pset tuples_only on
\o :out
SELECT biomed_ner(line::jsonb->>'text')::text FROM raw ORDER BY n;
\o
SQL
python3 bench/parity_base.py "$DIR" --ours "$OUT"
rm -f "$OUT"
