#!/usr/bin/env bash
# SQL fuzz: generated hostile notes through every entry point (biomed_ner, its array form,
# biomed_ner_entities, the trigger, biomed_ner_bulk; assertion on, biomed_ner_assert; biomed_ner_html) in a UTF8,
# a LATIN1 and a SQL_ASCII database of a throw-away PostgreSQL 15 cluster. Checks every offset
# with substr, that the forms agree, and that no backend crashed (server log, postmaster start
# time).
#   tests/robustness/fuzz.sh [NOTES]     (default 3000 per UTF8 database; CI runs a short one)
# Run as root after `cargo pgrx install`. Model: BIOMED_NER_FUZZ_MODEL, default the small
# fixture model (fast); '' for the bundled model.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-3000}
. scripts/cluster.sh
export PGCLIENTENCODING=UTF8
MODEL=${BIOMED_NER_FUZZ_MODEL-$(scripts/fixtures-for-postgres)/v3_base_like}
start_cluster 54341
started=$(cluster_psql -d postgres -Atc "SELECT pg_postmaster_start_time()")
. tests/robustness/lib.sh
HELPERS=$(helpers_sql)
run_db() { # DB ENCODING NOTES LATIN1
    local db=$1 enc=$2 n=$3 latin1=$4
    cluster_psql -d postgres -c "CREATE DATABASE $db ENCODING '$enc' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    local sql="SET client_encoding = 'UTF8'; SET biomed_ner.model = '$MODEL';"
    cluster_psql -d "$db" -c "CREATE EXTENSION biomed_ner" -f "$HELPERS" >/dev/null
    cluster_psql -d "$db" -c "$sql" -c "
        CREATE TABLE notes (id int PRIMARY KEY, body text, entities jsonb);
        CREATE TRIGGER annotate BEFORE INSERT OR UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('body', 'entities');
        INSERT INTO notes (id, body) SELECT i, fuzz_note(i, $latin1) FROM generate_series(1, $n) i;
        CREATE TABLE scalar AS SELECT id, biomed_ner(body) AS e FROM notes;" >/dev/null
    check "$db: $n notes, scalar spans" "$(cluster_psql -d "$db" -Atc "SELECT bool_and(spans_ok(n.body, s.e)) FROM notes n JOIN scalar s USING (id)")"
    check "$db: trigger equals scalar" "$(cluster_psql -d "$db" -Atc "SELECT bool_and(n.entities = s.e) FROM notes n JOIN scalar s USING (id)")"
    check "$db: array equals scalar" "$(cluster_psql -d "$db" -c "$sql" -Atc "
        SELECT bool_and(same_entities(u.a, s.e))
        FROM (SELECT id / 16 AS g, array_agg(id ORDER BY id) ids, biomed_ner(array_agg(body ORDER BY id)) r FROM notes GROUP BY 1) b,
             unnest(b.ids, b.r) u(id, a) JOIN scalar s USING (id)" | tail -1)"
    check "$db: entities spans" "$(cluster_psql -d "$db" -c "$sql" -Atc "
        SELECT coalesce(bool_and(start_pos < end_pos AND substr(n.body, start_pos + 1, end_pos - start_pos) = x.word), true)
        FROM notes n, biomed_ner_entities(n.body) x" | tail -1)"
    check "$db: bulk equals scalar" "$(cluster_psql -d "$db" -c "$sql" -Atc "
        SELECT count(*) = $n AND bool_and(same_entities(b.entities, s.e))
        FROM biomed_ner_bulk('SELECT id, body FROM notes', 32) b JOIN scalar s USING (id)" | tail -1)"
    # Assertion on the same notes: every entity gets one, biomed_ner_assert agrees on the stored
    # entities, and random spans are asserted or refused with 22023.
    check "$db: assertion on equals biomed_ner_assert" "$(cluster_psql -d "$db" -c "$sql SET biomed_ner.assertion = on;" -Atc "
        SELECT bool_and(jsonb_path_query_array(a.e, '\$[*].assertion') = jsonb_path_query_array(biomed_ner_assert(n.body, s.e), '\$[*].assertion')
                        AND jsonb_array_length(jsonb_path_query_array(a.e, '\$[*].assertion')) = jsonb_array_length(s.e)
                        AND same_entities(a.e, s.e))
        FROM notes n JOIN scalar s USING (id), LATERAL (SELECT biomed_ner(n.body) AS e) a" | tail -1)"
    check "$db: random spans asserted or refused 22023" "$(cluster_psql -d "$db" -Atc "
        DO \$\$ DECLARE r record; e jsonb; BEGIN
          FOR r IN SELECT id, body FROM notes WHERE id % 7 = 0 LOOP
            e := (SELECT jsonb_agg(jsonb_build_object('start', a, 'end', a + (r.id * i) % 9))
                  FROM (SELECT i, (r.id * i * 31) % (length(r.body) + 3) AS a FROM generate_series(1, 20) i) x);
            BEGIN
              PERFORM biomed_ner_assert(r.body, e);
            EXCEPTION WHEN invalid_parameter_value THEN NULL;
            END;
          END LOOP;
        END \$\$; SELECT 't'" | tail -1)"
    check "$db: biomed_ner_html keeps the text, each mark its slice" "$(cluster_psql -d "$db" -Atc "
        SELECT bool_and(html_text_ok(n.body, biomed_ner_html(n.body, s.e))) FROM notes n JOIN scalar s USING (id) WHERE n.body IS NOT NULL")"
    echo "     $db: $(cluster_psql -d "$db" -Atc "SELECT sum(jsonb_array_length(e)) FROM scalar") entities, $(cluster_psql -d "$db" -Atc "SELECT sum(length(body)) FROM notes") characters"
}
t0=$SECONDS
run_db fuzz_utf8 UTF8 "$N" false
run_db fuzz_latin1 LATIN1 "$((N / 2))" true
# SQL_ASCII: ASCII notes are annotated; any byte over 127 is 22021, never a crash.
cluster_psql -d postgres -c "CREATE DATABASE fuzz_ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
export PGCLIENTENCODING=SQL_ASCII
cluster_psql -d fuzz_ascii -c "CREATE EXTENSION biomed_ner" -f "$HELPERS" >/dev/null
ascii=$(cluster_psql -d fuzz_ascii -c "SET biomed_ner.model = '$MODEL'" -Atc "
    DO \$\$ DECLARE t text; e jsonb; refused int := 0; BEGIN
      FOR i IN 1..$((N / 4)) LOOP
        t := fuzz_note(i, true);
        BEGIN
          e := biomed_ner(t);
          IF t !~ '^[\x01-\x7f]*$' THEN RAISE EXCEPTION 'note % has bytes over 127 and was annotated', i; END IF;
          IF NOT spans_ok(t, e) THEN RAISE EXCEPTION 'note %: spans', i; END IF;
        EXCEPTION WHEN character_not_in_repertoire THEN
          IF t ~ '^[\x01-\x7f]*$' THEN RAISE EXCEPTION 'ASCII note % refused', i; END IF;
          refused := refused + 1;
        END;
      END LOOP;
      RAISE NOTICE 'refused %', refused;
    END \$\$; SELECT 't'" 2>&1 | tail -1)
export PGCLIENTENCODING=UTF8
check "fuzz_ascii: $((N / 4)) notes, ASCII annotated, other bytes 22021" "$ascii"
word=$(printf 'fi\xc3\xa8vre')
check "fuzz_ascii: biomed_ner_assert with a non-ASCII value in the entities is 22021" "$(cluster_psql -d fuzz_ascii -Atc "
    SELECT expect_error(\$q\$SELECT biomed_ner_assert('No fever.', '[{\"start\": 3, \"end\": 8, \"word\": \"$word\"}]')\$q\$) LIKE '22021: the entities'' text holds byte 0xc3%'")"
check "no backend crashed (postmaster start time unchanged)" "$([ "$started" = "$(cluster_psql -d postgres -Atc "SELECT pg_postmaster_start_time()")" ] && echo t || echo f)"
check "server log has no crash" "$(grep -qE 'terminated by signal|was terminated|server process .* exited' "$PGDATA_DIR/server.log" && echo f || echo t)"
echo "fuzz: $N + $((N / 2)) + $((N / 4)) notes in $((SECONDS - t0)) s"
summary fuzz
