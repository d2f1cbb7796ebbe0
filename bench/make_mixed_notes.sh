#!/usr/bin/env bash
# Writes DIR/sentences.jsonl for bench/service_bench.sh: the soak's 240 first notes (short
# clinical sentences, every tenth a hostile fuzz note of up to a few thousand characters, some
# with words of hundreds of letters; soak_note in tests/robustness/notes.sql), and links
# DIR/model to MODEL (default: the bundled model's folder). A workload where some notes are many
# times longer than the rest.
#   bench/make_mixed_notes.sh DIR [MODEL]     Run as root (a throw-away PostgreSQL 15 cluster).
set -euo pipefail
DIR=$1; MODEL=$(realpath "${2:-$(dirname "$0")/../models/maccrobat-small}")
cd "$(dirname "$0")/.."
mkdir -p "$DIR"; ln -sfn "$MODEL" "$DIR/model"
. scripts/cluster.sh
start_cluster 54369
. tests/robustness/lib.sh
cluster_psql -d postgres -f "$(helpers_sql)" >/dev/null
cluster_psql -d postgres -At -c "SELECT json_build_object('text', soak_note(i)) FROM generate_series(1, 240) i" >"$DIR/sentences.jsonl"
echo 0 >"$DIR/tokens_per_note"
python3 -c 'import json, sys; n = [len(json.loads(l)["text"]) for l in open(sys.argv[1])]; print(f"{len(n)} notes, {sum(n) / len(n):.0f} characters on average, the longest {max(n)}")' "$DIR/sentences.jsonl"
