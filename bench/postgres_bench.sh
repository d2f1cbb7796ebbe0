#!/usr/bin/env bash
# Inside PostgreSQL, side by side in one run on one server: per-row biomed_ner(body), the bulk
# path biomed_ner_bulk, and a plpython3u function calling the Hugging Face pipeline with the
# model cached in GD; plus one short note's latency in a warm backend and the first call's
# model-load time in a new backend. Same model (bench/make_base_model.py), same notes, same
# threads. Run as root after `cargo pgrx install --release`; installs postgresql-plpython3-15 and
# torch/transformers (into /opt/biomed-ner-bench, for this benchmark only).
#   bench/postgres_bench.sh /tmp/biomed-bench [THREADS]
set -euo pipefail
DIR=$(realpath "$1"); THREADS=${2:-2}
SITE=/opt/biomed-ner-bench/site
export DEBIAN_FRONTEND=noninteractive
dpkg -s postgresql-plpython3-15 >/dev/null 2>&1 || apt-get install -y -qq postgresql-plpython3-15 >/dev/null
if [ ! -d "$SITE/transformers" ]; then
    python3 -m pip install -q --target "$SITE" torch "transformers==4.57.*" >/dev/null
fi
chmod -R a+rX /opt/biomed-ner-bench "$DIR"
cd "$(dirname "$0")/.."
. scripts/cluster.sh
CLUSTER_THREADS=$THREADS start_cluster 54332
psql() { cluster_psql -d postgres "$@"; }
psql -v notes="$DIR/sentences.jsonl" -v table=notes < bench/load_sentences.sql >/dev/null
psql -v model="$DIR/model" -v site="$SITE" -v threads="$THREADS" <<'SQL'
CREATE EXTENSION biomed_ner;
CREATE EXTENSION plpython3u;
CREATE FUNCTION hf_ner(body text, site text, model text, threads int) RETURNS jsonb LANGUAGE plpython3u AS $$
import json
if 'nlp' not in GD:
    import sys
    sys.path.insert(0, site)
    import torch
    from transformers import pipeline
    torch.set_num_threads(threads)
    GD['nlp'] = pipeline('token-classification', model=model, aggregation_strategy='simple', device='cpu')
out = GD['nlp'](body)
return json.dumps([{k: (float(v) if k == 'score' else (int(v) if k in ('start', 'end') else v)) for k, v in e.items()} for e in out])
$$;
SET biomed_ner.model = :'model';
SET biomed_ner.threads = :threads;
\timing on
\echo '-- warm-up (loads both models)'
SELECT count(biomed_ner(body)) FROM notes WHERE id <= 8;
SELECT count(hf_ner(body, :'site', :'model', :threads)) FROM notes WHERE id <= 8;
\echo '-- plpython3u + Hugging Face pipeline, per row'
SELECT count(hf_ner(body, :'site', :'model', :threads)) FROM notes;
\echo '-- biomed_ner(body), per row'
SELECT count(biomed_ner(body)) FROM notes;
\echo '-- biomed_ner_bulk, 64 rows per call'
SELECT count(*) FROM biomed_ner_bulk('SELECT id, body FROM notes', 64);
\echo '-- one short note in a warm backend, 20 times'
SELECT count(biomed_ner('A 48-year-old female presented with vaginal bleeding and abnormal Pap smears.')) FROM generate_series(1, 20);
SELECT count(hf_ner('A 48-year-old female presented with vaginal bleeding and abnormal Pap smears.', :'site', :'model', :threads)) FROM generate_series(1, 20);
SQL
echo '-- first call in a new backend (model load included), then biomed_ner_info()->load_seconds'
psql -v model="$DIR/model" <<'SQL'
SET biomed_ner.model = :'model';
\timing on
SELECT jsonb_array_length(biomed_ner('Fever and cough.')) >= 0 AS first_call;
\timing off
SELECT biomed_ner_info()->>'load_seconds' AS load_seconds;
SQL
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), threads $THREADS"
