-- biomed_ner_progress: every running biomed_ner_bulk, queue batch and biomed_ner_queue_drain.
-- The runs are seen from inside (the bulk's query and a watched table's trigger record what
-- the view shows for their backend); tests/robustness/progress.sh watches a 20,000-row bulk
-- from another session. On PostgreSQL 15 and 16 without biomed_ner in shared_preload_libraries
-- the view raises 55000 (progress_1.out).
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
SELECT expect_error('SELECT count(*) FROM biomed_ner_progress') AS view;
SELECT expect_error('SELECT count(*) FROM biomed_ner_progress') = 'no error' AS recorded \gset
\if :recorded
SELECT count(*) AS runs_before FROM biomed_ner_progress WHERE pid = pg_backend_pid();
CREATE TABLE progress_seen (seq serial, at_row int, command text, relation text, rows_done bigint, rows_total bigint,
                            total_is_estimate boolean, started_ok boolean, rate_ok boolean, usename text);
CREATE FUNCTION record_progress(at_row int) RETURNS boolean LANGUAGE sql AS $$
  INSERT INTO progress_seen (at_row, command, relation, rows_done, rows_total, total_is_estimate, started_ok, rate_ok, usename)
  SELECT at_row, command, relation::text, rows_done, rows_total, total_is_estimate,
         started BETWEEN now() AND clock_timestamp(), notes_per_second IS NULL OR notes_per_second >= 0, usename::text
  FROM biomed_ner_progress WHERE pid = pg_backend_pid();
  SELECT true $$;
CREATE FUNCTION progress_note(i int) RETURNS text LANGUAGE sql AS $$
  SELECT CASE WHEN record_progress(i) THEN 'Fever and cough for ' || i || ' days.' END $$;
-- A bulk of 6 rows in batches of 2: its query's rows are read batch by batch, so the rows of
-- batch k see the 2(k-1) rows done before (the total is the planner's estimate, here exact).
SELECT count(*) AS rows FROM biomed_ner_bulk('SELECT i, progress_note(i) FROM generate_series(1, 6) i', 2);
SELECT at_row, command, relation, rows_done, rows_total, total_is_estimate, started_ok, rate_ok, usename = current_user AS mine
FROM progress_seen ORDER BY seq;
-- A bulk whose query runs another bulk: one run shown, the outer one, its rows only.
TRUNCATE progress_seen;
SELECT count(*) AS rows FROM biomed_ner_bulk('SELECT i, progress_note(i) FROM generate_series(1, 4) i
  WHERE (SELECT count(*) FROM biomed_ner_bulk(''SELECT 1, ''''Cough.'''''')) = 1', 2);
SELECT at_row, command, rows_done FROM progress_seen ORDER BY seq;
-- Ended: no run left for this backend, also after a bulk stopped by LIMIT or an error.
SELECT count(*) AS runs_after FROM biomed_ner_progress WHERE pid = pg_backend_pid();
SELECT count(*) AS rows FROM (SELECT * FROM biomed_ner_bulk('SELECT i, ''Fever.'' FROM generate_series(1, 100) i', 10) LIMIT 3) b;
SELECT count(*) AS runs_after_limit FROM biomed_ner_progress WHERE pid = pg_backend_pid();
SELECT expect_error($$SELECT count(*) FROM biomed_ner_bulk('SELECT i, CASE WHEN i < 5 THEN ''Fever.'' ELSE (1/0)::text END FROM generate_series(1, 9) i', 2)$$);
SELECT count(*) AS runs_after_error FROM biomed_ner_progress WHERE pid = pg_backend_pid();
-- Another role sees that a run exists, not its details; a member of pg_read_all_stats sees them.
TRUNCATE progress_seen;
CREATE ROLE progress_other;
CREATE ROLE progress_reader IN ROLE pg_read_all_stats;
CREATE TABLE progress_views (seq serial, seen text);
GRANT INSERT ON progress_views TO PUBLIC;
GRANT USAGE ON SEQUENCE progress_views_seq_seq TO PUBLIC;
CREATE FUNCTION progress_as(who text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  SELECT * INTO r FROM biomed_ner_progress WHERE pid = pg_backend_pid();
  INSERT INTO progress_views (seen) VALUES (who || ' (' || CASE WHEN current_user = session_user THEN 'session user' ELSE current_user END || '): ' || r.command || ', rows '
    || coalesce(r.rows_done::text, 'hidden') || ' of ' || coalesce(r.rows_total::text, 'hidden')
    || ', started ' || CASE WHEN r.started IS NULL THEN 'hidden' ELSE 'shown' END
    || ', user ' || CASE WHEN r.usename = session_user THEN 'shown' ELSE 'other' END);
  RETURN 'Fever. ';
END $$;
CREATE FUNCTION progress_as_other() RETURNS text LANGUAGE sql SECURITY DEFINER AS $$ SELECT progress_as('other') $$;
CREATE FUNCTION progress_as_reader() RETURNS text LANGUAGE sql SECURITY DEFINER AS $$ SELECT progress_as('reader') $$;
ALTER FUNCTION progress_as_other() OWNER TO progress_other;
ALTER FUNCTION progress_as_reader() OWNER TO progress_reader;
SELECT count(*) AS rows FROM biomed_ner_bulk('SELECT i, progress_as_other() || progress_as_reader() || progress_as(''caller'') FROM generate_series(1, 2) i', 1);
SELECT seen FROM progress_views ORDER BY seq;
-- A session's drain of a watched table: the caller's run, on that table, rows of max_rows.
CREATE TABLE progress_watched (id int PRIMARY KEY, body text, entities jsonb);
INSERT INTO progress_watched SELECT g, 'Chest pain ' || g || '.' FROM generate_series(1, 5) g;
SELECT biomed_ner_watch('progress_watched', 'body', 'entities');
CREATE FUNCTION progress_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM record_progress(NEW.id); RETURN NEW; END $$;
CREATE TRIGGER progress_written AFTER UPDATE ON progress_watched FOR EACH ROW EXECUTE FUNCTION progress_written();
SELECT biomed_ner_queue_drain('progress_watched', 3) AS annotated;
SELECT at_row, command, relation, rows_done, rows_total, total_is_estimate, usename = current_user AS mine FROM progress_seen ORDER BY seq;
SELECT count(*) AS runs_after_drain FROM biomed_ner_progress WHERE pid = pg_backend_pid();
SELECT biomed_ner_unwatch('progress_watched');
DROP TABLE progress_watched, progress_seen, progress_views;
DROP FUNCTION progress_as_other(), progress_as_reader(), progress_as(text), progress_note(int), record_progress(int), progress_written();
DROP ROLE progress_other, progress_reader;
\endif
