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
-- An ordinary role whose model folder the server's configuration chose: its parallel workers
-- check where the setting came from without taking a transaction id (which a parallel worker,
-- like a hot standby, may not).
ALTER SYSTEM SET biomed_ner.model = :'fixture';
SELECT pg_reload_conf();
SELECT pg_sleep(0.3);
CREATE ROLE parallel_reader;
GRANT SELECT ON notes, serial_result TO parallel_reader;
SET SESSION AUTHORIZATION parallel_reader;
RESET biomed_ner.model;
SELECT source FROM pg_settings WHERE name = 'biomed_ner.model';
SELECT count(*) AS rows, bool_and(p.e = s.e) AS same
FROM (SELECT id, biomed_ner(body) AS e FROM notes) p JOIN serial_result s USING (id);
RESET SESSION AUTHORIZATION;
ALTER SYSTEM RESET biomed_ner.model;
SELECT pg_reload_conf();
REVOKE ALL ON notes, serial_result FROM parallel_reader;
DROP ROLE parallel_reader;
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000
                       THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'off', false) AS parallel_forced;
DROP TABLE serial_result;
DROP TABLE notes;
