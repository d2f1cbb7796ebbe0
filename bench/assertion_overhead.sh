#!/usr/bin/env bash
# What clinical assertion adds to NER in the command line: the 190 MACCROBAT reports annotated
# with and without --assertion, side by side, ROUNDS rounds (default 3), medians; and
# `biomed-ner assert` alone on the entities of the first run (the rules and the learned stage,
# no model). Prints one line per measurement and the ratio. Needs a release build of the CLI
# (in $CARGO_TARGET_DIR, or target/).
#   bench/assertion_overhead.sh [ROUNDS] [extra biomed-ner options, e.g. --model DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; shift || true
bin=${CARGO_TARGET_DIR:-target}/release/biomed-ner
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/notes.jsonl" <<'PY'
import glob, json, sys
with open(sys.argv[1], "w") as out:
    for p in sorted(glob.glob("data/maccrobat/*.txt")):
        out.write(json.dumps({"text": open(p, encoding="utf-8").read()}) + "\n")
PY
secs() { local s e; s=$(date +%s.%N); "$@" >"$tmp/out" 2>/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: >"$tmp/plain"; : >"$tmp/asserted"; : >"$tmp/assert_only"
for r in $(seq "$rounds"); do
    secs "$bin" "$@" <"$tmp/notes.jsonl" >>"$tmp/plain"
    python3 -c "
import json,sys
texts=[json.loads(l)['text'] for l in open('$tmp/notes.jsonl')]
ents=[json.loads(l) for l in open('$tmp/out')]
with open('$tmp/pairs.jsonl','w') as f:
    for t,e in zip(texts,ents): f.write(json.dumps({'text':t,'entities':e})+'\n')"
    secs "$bin" "$@" --assertion <"$tmp/notes.jsonl" >>"$tmp/asserted"
    secs "$bin" assert <"$tmp/pairs.jsonl" >>"$tmp/assert_only"
done
p=$(median <"$tmp/plain"); a=$(median <"$tmp/asserted"); o=$(median <"$tmp/assert_only")
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F); $rounds rounds; options: ${*:-(bundled model)}"
echo "ner:              ${p}s (median)"
echo "ner + assertion:  ${a}s (median), $(echo "scale=3; $a / $p" | bc)x"
echo "assert alone:     ${o}s (median) for $(wc -l <"$tmp/pairs.jsonl") notes, $(python3 -c "import json;print(sum(len(json.loads(l)['entities']) for l in open('$tmp/pairs.jsonl')))") entities"
