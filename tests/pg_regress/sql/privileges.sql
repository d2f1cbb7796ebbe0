-- Who may make the server read what. An ordinary role chooses models by name from the folders
-- of biomed_ner.model_path (superusers only); only superusers and members of
-- pg_read_server_files may point biomed_ner.model at a folder; errors never tell an ordinary
-- role whether a path exists, nor quote the content of a file; ceilings bind it.
LOAD 'biomed_ner';
\getenv fixture BIOMED_NER_FIXTURE
\! mkdir -p /tmp/biomed_ner_models && rm -rf /tmp/biomed_ner_models/* && cp -r "$BIOMED_NER_FIXTURE" /tmp/biomed_ner_models/small
\! mkdir -p /tmp/biomed_ner_models/secret && cp "$BIOMED_NER_FIXTURE/tokenizer.json" "$BIOMED_NER_FIXTURE/model.safetensors" /tmp/biomed_ner_models/secret/
\! echo '{"model_type": "deberta-v2", "hidden_size": "SECRET-VALUE"}' > /tmp/biomed_ner_models/secret/config.json
\! ln -s /etc /tmp/biomed_ner_models/outside
\! mkdir -p /tmp/biomed_ner_models/models--org--linked/snapshots /tmp/biomed_ner_models/models--org--linked/refs && echo abc > /tmp/biomed_ner_models/models--org--linked/refs/main && ln -s "$BIOMED_NER_FIXTURE" /tmp/biomed_ner_models/models--org--linked/snapshots/abc
\! chmod -R a+rX /tmp/biomed_ner_models
CREATE ROLE biomed_ner_user LOGIN;
CREATE ROLE biomed_ner_reader LOGIN IN ROLE pg_read_server_files;
SET biomed_ner.model_path = '/nonexistent:/tmp/biomed_ner_models';
SET ROLE biomed_ner_user;
-- A folder is refused, whether it exists or not, with the same words.
SELECT expect_error(format('SET biomed_ner.model = %L', :'fixture'));
SELECT expect_error($$SET biomed_ner.model = '/no/such/folder'$$);
SELECT expect_error($$SET biomed_ner.model = '../../etc'$$);
SELECT expect_error($$SELECT set_config('biomed_ner.model', '/etc', false)$$);
SELECT expect_error($$ALTER ROLE biomed_ner_user SET biomed_ner.model = '/etc'$$);
-- Names: found in model_path, missing, or leading out of it.
SET biomed_ner.model = 'small';
SELECT jsonb_array_length(biomed_ner('Fever and cough.')) > 0 AS name_works;
SET biomed_ner.model = 'missing';
SELECT expect_error($$SELECT biomed_ner('fever')$$);
SET biomed_ner.model = 'outside';
SELECT expect_error($$SELECT biomed_ner('fever')$$);
-- A hub cache folder inside whose snapshot is a link to a folder outside.
SET biomed_ner.model = 'models--org--linked';
SELECT expect_error($$SELECT biomed_ner('fever')$$);
-- A broken file: the kind of failure, not its content.
SET biomed_ner.model = 'secret';
SELECT expect_error($$SELECT biomed_ner('fever')$$);
SELECT expect_error($$SELECT biomed_ner('fever')$$) LIKE '%SECRET%' AS content_leaked;
-- Ceilings and the settings behind them are the superuser's.
SELECT expect_error($$SET biomed_ner.model_path = '/'$$);
SELECT expect_error($$SET biomed_ner.max_threads = 64$$);
SELECT expect_error($$SET biomed_ner.max_memory = '64GB'$$);
SELECT expect_error($$SET biomed_ner.max_chars = 100000000$$);
SET biomed_ner.model = 'small';
SET biomed_ner.threads = 1000;
SELECT (biomed_ner_info()->>'threads')::int < 1000 AS threads_capped;
RESET biomed_ner.threads;
RESET ROLE;
-- The superuser sees the details of the same failure.
SET biomed_ner.model = 'secret';
SELECT expect_error($$SELECT biomed_ner('fever')$$) LIKE '%SECRET-VALUE%' AS superuser_sees_details;
-- Nor does a superuser's SECURITY DEFINER function show them to a role logged in as itself.
CREATE FUNCTION definer_ner(t text) RETURNS jsonb LANGUAGE sql SECURITY DEFINER AS $$ SELECT biomed_ner(t) $$;
ALTER ROLE biomed_ner_user SET biomed_ner.model_path = '/tmp/biomed_ner_models';
SELECT current_user AS regress_user \gset
\c - biomed_ner_user
SET biomed_ner.model = 'secret';
SELECT expect_error($$SELECT definer_ner('fever')$$);
SELECT expect_error($$SELECT definer_ner('fever')$$) LIKE '%SECRET%' AS content_leaked_through_definer;
\c - :regress_user
LOAD 'biomed_ner';
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model_path = '/nonexistent:/tmp/biomed_ner_models';
DROP FUNCTION definer_ner(text);
-- Members of pg_read_server_files may name a folder.
SET ROLE biomed_ner_reader;
SET biomed_ner.model = :'fixture';
SELECT jsonb_array_length(biomed_ner('Fever and cough.')) > 0 AS reader_may_name_folders;
RESET ROLE;
RESET biomed_ner.model;
RESET biomed_ner.model_path;
DROP ROLE biomed_ner_user;
DROP ROLE biomed_ner_reader;
\! rm -rf /tmp/biomed_ner_models
