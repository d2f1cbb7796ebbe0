-- statement_timeout and cancel stop a long call within a second or so (57014).
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
SET biomed_ner.batch_size = 1;
CREATE TEMP TABLE t AS SELECT clock_timestamp() AS started;
SET statement_timeout = '300ms';
-- (57014 cannot be caught by WHEN OTHERS, so the error shows as the client sees it.)
\set VERBOSITY sqlstate
SELECT cardinality(biomed_ner(ARRAY(SELECT repeat('Chest pain with fever and cough. ', 40) FROM generate_series(1, 20000))));
\set VERBOSITY default
RESET statement_timeout;
SELECT clock_timestamp() - started < interval '5 seconds' AS stopped_quickly FROM t;
SELECT jsonb_array_length(biomed_ner('Fever.')) > 0 AS backend_still_works;
