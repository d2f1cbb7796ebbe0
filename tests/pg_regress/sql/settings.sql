-- Every setting: defaults, valid values, and invalid values refused at SET. Settings exist
-- once the library is loaded: by the first biomed_ner call of a session, by LOAD, or for every
-- session by session_preload_libraries.
LOAD 'biomed_ner';
SELECT name, boot_val AS default, context, short_desc IS NOT NULL AS documented FROM pg_settings
WHERE name LIKE 'biomed_ner.%' ORDER BY name;
SELECT expect_error($$SET biomed_ner.device = 'tpu'$$);
SELECT expect_error($$SET biomed_ner.dtype = 'f64'$$);
SELECT expect_error($$SET biomed_ner.aggregation = 'longest'$$);
SELECT expect_error($$SET biomed_ner.max_length = 0$$);
SELECT expect_error($$SET biomed_ner.execution = 'remote'$$);
SELECT expect_error($$SET biomed_ner.workers = 2$$);
SELECT expect_error($$SET biomed_ner.batch_wait_ms = 5$$);
SELECT expect_error($$SET biomed_ner.stride = -1$$);
SELECT expect_error($$SET biomed_ner.batch_size = 0$$);
SELECT expect_error($$SET biomed_ner.threads = -2$$);
SELECT expect_error($$SET biomed_ner.max_chars = 0$$);
SELECT expect_error($$SET biomed_ner.no_such_setting = 1$$);
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
-- aggregation: none gives one entry per token, in the pipeline's token shape.
SET biomed_ner.aggregation = 'none';
SELECT (biomed_ner('Fever.')->0) ?& ARRAY['entity', 'score', 'index', 'word', 'start', 'end'] AS token_shape;
SET biomed_ner.aggregation = 'first';
SELECT jsonb_array_length(biomed_ner('Fever and cough.')) > 0 AS first_works;
SET biomed_ner.aggregation = 'average';
SELECT jsonb_array_length(biomed_ner('Fever and cough.')) > 0 AS average_works;
SET biomed_ner.aggregation = 'max';
SELECT jsonb_array_length(biomed_ner('Fever and cough.')) > 0 AS max_works;
RESET biomed_ner.aggregation;
-- Long notes in small windows: still code-point exact, and nothing doubled.
SET biomed_ner.max_length = 16;
SET biomed_ner.stride = 4;
SELECT bool_and(substr(t, (e->>'start')::int + 1, (e->>'end')::int - (e->>'start')::int) = e->>'word') AS slices,
       count(*) = count(DISTINCT (e->>'start', e->>'end', e->>'entity_group')) AS no_doubles
FROM (SELECT repeat('Chest pain with fever 😷 and cough. ', 12) AS t) v, jsonb_array_elements(biomed_ner(t)) e;
SET biomed_ner.stride = 14;
SELECT expect_error($$SELECT biomed_ner('fever')$$);
RESET biomed_ner.max_length;
RESET biomed_ner.stride;
-- threads and batch_size are this backend's (the shared service's come from the server's
-- configuration), so this part runs in the backend whatever biomed_ner.execution says.
SET biomed_ner.execution = 'backend';
SET biomed_ner.batch_size = 1;
SET biomed_ner.threads = 1;
SELECT biomed_ner(ARRAY['Fever.', 'Cough.']) = ARRAY[biomed_ner('Fever.'), biomed_ner('Cough.')] AS batch_size_1_is_exact;
SELECT biomed_ner_info()->>'threads' AS threads, biomed_ner_info()->>'batch_size' AS batch_size;
RESET biomed_ner.batch_size;
RESET biomed_ner.threads;
RESET biomed_ner.execution;
-- dtype reloads the model.
SET biomed_ner.dtype = 'bf16';
SELECT biomed_ner_info()->>'dtype' AS dtype, jsonb_array_length(biomed_ner('Fever and cough.')) > 0 AS runs;
RESET biomed_ner.dtype;
-- int8 (CPU only): the layers' projections quantised. With the bundled (trained) model, the
-- same entities as f32 on these notes and scores close; on cuda it is refused, under auto it
-- runs on the CPU.
SET biomed_ner.model = '';
CREATE TEMP TABLE int8_notes AS SELECT i, t FROM unnest(ARRAY['Fever and cough for three days.',
  'A 45-year-old man presented with chest pain radiating to the left arm.',
  'CT showed a 3 cm mass in the right lower lobe; biopsy confirmed adenocarcinoma.']) WITH ORDINALITY u(t, i);
CREATE TEMP TABLE f32_run AS SELECT i, biomed_ner(t) AS e FROM int8_notes;
SET biomed_ner.dtype = 'int8';
SELECT biomed_ner_info()->>'dtype' AS dtype;
CREATE TEMP TABLE int8_run AS SELECT i, biomed_ner(t) AS e FROM int8_notes;
SELECT i, jsonb_array_length(f.e) AS entities,
       (SELECT jsonb_agg(x - 'score') FROM jsonb_array_elements(f.e) x)
         = (SELECT jsonb_agg(x - 'score') FROM jsonb_array_elements(q.e) x) AS same_entities,
       (SELECT max(abs((a->>'score')::float8 - (b->>'score')::float8))
          FROM jsonb_array_elements(f.e) WITH ORDINALITY a(a, n)
          JOIN jsonb_array_elements(q.e) WITH ORDINALITY b(b, n) USING (n)) < 0.05 AS close_scores
FROM f32_run f JOIN int8_run q USING (i) ORDER BY i;
SET biomed_ner.device = 'cuda';
SELECT expect_error($$SELECT biomed_ner('fever')$$);
SET biomed_ner.device = 'auto';
SELECT biomed_ner_info()->>'device' AS int8_auto_device;
RESET biomed_ner.device;
RESET biomed_ner.dtype;
SET biomed_ner.model = :'fixture';
-- device: cuda needs a GPU build; auto falls back to cpu.
SET biomed_ner.device = 'cuda';
SELECT expect_error($$SELECT biomed_ner('fever')$$) LIKE '0A000: biomed_ner.device is cuda but no GPU is usable%' AS cuda_refused;
SET biomed_ner.device = 'auto';
SELECT biomed_ner_info()->>'device' AS auto_device;
RESET biomed_ner.device;
-- biomed_ner_info
SELECT i->>'model' = :'fixture' AS model, i->>'bundled' AS bundled, jsonb_array_length(i->'labels') AS labels,
       i->>'dtype' AS dtype, i->>'device' AS device, (i->>'load_seconds')::float8 >= 0 AS load_time,
       (i->>'notes_annotated')::int >= 0 AS calls
FROM biomed_ner_info() i;
