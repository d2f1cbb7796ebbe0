-- The shared inference service (run by `scripts/regress --service` only: the library is
-- preloaded and the server's biomed_ner.model is the fixture model).
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
SELECT s->>'state' AS state, s->>'execution' AS execution, s->>'model_setting' = :'fixture' AS fixture,
       (s->>'pid')::int > 0 AS has_pid, (s->>'pid')::int <> pg_backend_pid() AS own_process,
       s ?& ARRAY['queue_depth', 'requests', 'batches', 'mean_batch_notes', 'uptime_seconds', 'last_error', 'restarts'] AS observable
FROM biomed_ner_service() s;
SELECT biomed_ner_info()->>'execution' AS execution;
-- Calls go to the service and give the backend's entities.
SELECT (biomed_ner_service()->>'notes_annotated')::int AS before \gset
SELECT biomed_ner(ARRAY['Fever and cough.', NULL, '', 'Aspirin 81 mg daily for chest pain.']) AS service \gset
SELECT (biomed_ner_service()->>'notes_annotated')::int - :before AS notes_sent;
SET biomed_ner.execution = 'backend';
SELECT biomed_ner_info()->>'execution' AS execution;
SELECT bool_and(same_entities(a, b)) AS same_as_backend
FROM unnest(:'service'::jsonb[], biomed_ner(ARRAY['Fever and cough.', NULL, '', 'Aspirin 81 mg daily for chest pain.'])) u(a, b);
RESET biomed_ner.execution;
-- A large call goes in requests of at most 32 KiB of text, in order, so that no session holds
-- the service for long: 100 notes of 1,000 characters (blanks: no tokens, so it is quick) with a
-- short note among them make four requests.
SELECT (biomed_ner_service()->>'requests')::int AS before \gset
WITH c AS MATERIALIZED (
    SELECT biomed_ner(ARRAY(SELECT CASE WHEN i = 51 THEN 'Fever and cough.' ELSE repeat(' ', 1000) END
                            FROM generate_series(1, 100) i)) AS e)
SELECT cardinality(e) AS notes, e[51] = biomed_ner('Fever and cough.') AS in_place,
       (SELECT count(*) FROM unnest(e) x WHERE x = '[]') AS empty
FROM c;
SELECT (biomed_ner_service()->>'requests')::int - :before - 1 AS requests_of_the_large_call;
-- A note longer than a request runs in this backend under auto, and is refused under service.
SELECT (biomed_ner_service()->>'requests')::int AS before \gset
SELECT jsonb_array_length(biomed_ner(repeat('Fever and cough. ', 2000))) > 0 AS annotated;
SELECT (biomed_ner_service()->>'requests')::int - :before <= 1 AS not_sent_to_the_service;
SET biomed_ner.execution = 'service';
SELECT expect_error($$SELECT biomed_ner(repeat('Fever and cough. ', 2000))$$);
RESET biomed_ner.execution;
-- Another model: under auto the session runs it itself, under service it is refused.
SET biomed_ner.model = '';
SELECT biomed_ner_info()->>'execution' AS execution, biomed_ner_info()->>'bundled' AS bundled;
SET biomed_ner.execution = 'service';
SELECT expect_error($$SELECT biomed_ner('fever')$$);
SET biomed_ner.device = 'auto';
SET biomed_ner.model = :'fixture';
SELECT expect_error($$SELECT biomed_ner('fever')$$) LIKE '22023: the inference service runs model%' AS device_differs;
RESET biomed_ner.device;
SELECT jsonb_typeof(biomed_ner('fever')) AS served;
-- Per-call options follow the session.
SET biomed_ner.aggregation = 'none';
SELECT biomed_ner('Fever and cough.')->0 ? 'index' AS token_level;
RESET biomed_ner.aggregation;
-- Windows that overlap by more than half would take more than a session's share of the
-- service's time: under service such a call is refused, under auto it runs in this backend.
SET biomed_ner.stride = 1000;
SELECT expect_error($$SELECT biomed_ner('fever')$$);
SET biomed_ner.stride = 300;
SELECT expect_error($$SELECT biomed_ner('fever')$$);
SET biomed_ner.execution = 'auto';
SELECT biomed_ner_info()->>'execution' AS execution, jsonb_array_length(biomed_ner('Fever and cough.')) > 0 AS annotated;
SET biomed_ner.stride = 256;
SELECT biomed_ner_info()->>'execution' AS execution;
SET biomed_ner.max_length = 1024;
SELECT biomed_ner_info()->>'execution' AS execution;
RESET biomed_ner.max_length;
SET biomed_ner.execution = 'service';
RESET biomed_ner.stride;
-- Waiting for the service answers a timeout, and the service drops the abandoned request.
SET statement_timeout = '200ms';
SELECT biomed_ner(ARRAY(SELECT repeat('Chest pain with fever and cough. ', 900) FROM generate_series(1, 40)));
RESET statement_timeout;
SELECT jsonb_array_length(biomed_ner('Fever and cough.')) > 0 AS serves_after_cancel;
-- A server configuration change reloads the service's model in the same process; a model
-- that cannot load gives every caller the SQLSTATE of backend mode.
SELECT (biomed_ner_service()->>'pid') AS pid \gset
ALTER SYSTEM SET biomed_ner.model = '/nonexistent/model';
SELECT pg_reload_conf();
CREATE FUNCTION pg_temp.wait_for_service(setting text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  s jsonb;
BEGIN
  FOR i IN 1..200 LOOP
    s := biomed_ner_service();  -- one answer: its state is the one reached with its model_setting
    IF s->>'model_setting' = setting AND s->>'state' <> 'loading' THEN
      RETURN s->>'state';
    END IF;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN 'timed out';
END $$;
SELECT pg_temp.wait_for_service('/nonexistent/model') AS state;
SET biomed_ner.model = '/nonexistent/model';
SELECT expect_error($$SELECT biomed_ner('fever')$$);
SELECT biomed_ner_service()->>'pid' = :'pid' AS same_process;
ALTER SYSTEM RESET biomed_ner.model;
SELECT pg_reload_conf();
SELECT pg_temp.wait_for_service(:'fixture') AS state;
-- More model processes, and back to one, without a restart of the server.
SET biomed_ner.model = :'fixture';
ALTER SYSTEM SET biomed_ner.workers = 2;
SELECT pg_reload_conf();
CREATE FUNCTION pg_temp.wait_for_workers(n int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..200 LOOP
    BEGIN
      IF (biomed_ner_service()->>'workers')::int = n THEN RETURN true; END IF;
    EXCEPTION WHEN OTHERS THEN
      NULL;  -- a process being ended while it answers
    END;
    PERFORM pg_sleep(0.05);
  END LOOP;
  RETURN false;
END $$;
SELECT pg_temp.wait_for_workers(2) AS two_workers;
SELECT bool_and(jsonb_array_length(biomed_ner('Fever and cough ' || i)) > 0) AS served FROM generate_series(1, 20) i;
ALTER SYSTEM RESET biomed_ner.workers;
SELECT pg_reload_conf();
SELECT pg_temp.wait_for_workers(1) AS one_worker;
SELECT jsonb_array_length(biomed_ner('Fever and cough.')) > 0 AS served;
-- The counters of work count every role's calls: NULL for roles without pg_read_all_stats.
CREATE ROLE service_nobody;
CREATE ROLE service_stats IN ROLE pg_read_all_stats;
SET ROLE service_nobody;
SELECT s->'requests' AS requests, s->'notes_annotated' AS notes, s->'queue_depth' AS queue_depth, s->>'state' AS state
FROM biomed_ner_service() s;
SELECT biomed_ner_info()->'notes_annotated' AS info_notes, biomed_ner_info()->>'execution' AS execution;
SET ROLE service_stats;
SELECT jsonb_typeof(s->'requests') AS requests, jsonb_typeof(s->'notes_annotated') AS notes FROM biomed_ner_service() s;
RESET ROLE;
DROP ROLE service_nobody, service_stats;
