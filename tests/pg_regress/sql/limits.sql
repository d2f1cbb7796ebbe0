-- Memory and hostile model files: refused with a SQLSTATE before anything large is asked of
-- the system, and the backend answers afterwards.
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
-- The reported abort: max_length raised, a 40,000-character note, a 2 GB attention matrix.
SET biomed_ner.max_length = 1000000;
SELECT expect_error($$SELECT biomed_ner(repeat('fever and cough ', 2500))$$);
RESET biomed_ner.max_length;
-- A budget that holds one window but not a batch: batches are cut, entities unchanged.
SELECT biomed_ner(ARRAY['Fever and cough.', 'Chest pain.', 'Aspirin 81 mg.']) AS free \gset
SET biomed_ner.max_memory = '16MB';
SET biomed_ner.max_length = 64;
SET biomed_ner.stride = 16;
SELECT bool_and(same_entities(a, b)) AS same_under_budget
FROM unnest(:'free'::jsonb[], biomed_ner(ARRAY['Fever and cough.', 'Chest pain.', 'Aspirin 81 mg.'])) u(a, b);
RESET biomed_ner.max_length;
RESET biomed_ner.stride;
RESET biomed_ner.max_memory;
-- The reported crash: a pytorch_model.bin whose pickle nests lists 100,000 deep.
\! mkdir -p /tmp/biomed_ner_hostile && cp "$BIOMED_NER_FIXTURE/config.json" "$BIOMED_NER_FIXTURE/tokenizer.json" /tmp/biomed_ner_hostile/
\! python3 -c "import zipfile; z = zipfile.ZipFile('/tmp/biomed_ner_hostile/pytorch_model.bin', 'w'); z.writestr('archive/data.pkl', b'\x80\x02' + b']' * 100000 + b'a' * 99999 + b'.'); z.close()"
\! chmod -R a+rX /tmp/biomed_ner_hostile
SET biomed_ner.model = '/tmp/biomed_ner_hostile';
SELECT expect_error($$SELECT biomed_ner('fever')$$);
SELECT 1 AS backend_still_answers;
\! rm -rf /tmp/biomed_ner_hostile
-- biomed_ner_bulk: ids are integers, never rounded; its cursor closed under it is an error
-- with a SQLSTATE.
SET biomed_ner.model = :'fixture';
SELECT expect_error($$SELECT * FROM biomed_ner_bulk('SELECT 1.5, ''fever''')$$);
SELECT expect_error($$SELECT * FROM biomed_ner_bulk('SELECT ''a'', ''fever''')$$);
SELECT id FROM biomed_ner_bulk('SELECT 7::smallint, ''fever''');
-- CLOSE ALL run between two batches (biomed_ner_bulk in the select list runs row by row).
CREATE FUNCTION close_all() RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'CLOSE ALL'; RETURN 1; END $$;
SELECT expect_error($$SELECT biomed_ner_bulk('SELECT i, ''fever'' FROM generate_series(1, 5) i', 1), close_all()$$);
DROP FUNCTION close_all();
