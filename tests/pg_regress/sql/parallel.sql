-- Parallel query: each worker loads its own model and gives the same results.
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
CREATE TABLE notes(id int, body text);
INSERT INTO notes SELECT g, 'Note ' || g || ' reports fever and cough.' FROM generate_series(1, 30) g;
ANALYZE notes;
CREATE TABLE serial_result AS SELECT id, biomed_ner(body) AS e FROM notes;
-- force_parallel_mode is debug_parallel_query from PostgreSQL 16 on.
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'on', false) AS parallel_forced;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT id, biomed_ner(body) FROM notes;
SELECT count(*) AS rows, bool_and(p.e = s.e) AS same
FROM (SELECT id, biomed_ner(body) AS e FROM notes) p JOIN serial_result s USING (id);
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'off', false) AS parallel_forced;
DROP TABLE serial_result;
DROP TABLE notes;
