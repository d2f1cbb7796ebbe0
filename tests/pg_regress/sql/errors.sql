-- Errors carry a SQLSTATE and a hint, and the backend answers afterwards.
SET biomed_ner.model = '/nonexistent/model';
SELECT expect_error($$SELECT biomed_ner('fever')$$);
SELECT 1 AS backend_still_answers;
\! mkdir -p /tmp/biomed_ner_regress/no_tokenizer /tmp/biomed_ner_regress/bad_config /tmp/biomed_ner_regress/bad_weights
\! echo '{}' > /tmp/biomed_ner_regress/no_tokenizer/config.json
SET biomed_ner.model = '/tmp/biomed_ner_regress/no_tokenizer';
SELECT expect_error($$SELECT biomed_ner('fever')$$);
\getenv fixture BIOMED_NER_FIXTURE
\set tokenizer :fixture '/tokenizer.json'
\set config :fixture '/config.json'
\! echo '{"model_type": "bert"' > /tmp/biomed_ner_regress/bad_config/config.json
\! touch /tmp/biomed_ner_regress/bad_config/tokenizer.json /tmp/biomed_ner_regress/bad_config/model.safetensors
SET biomed_ner.model = '/tmp/biomed_ner_regress/bad_config';
SELECT expect_error($$SELECT biomed_ner('fever')$$) LIKE 'F0000: cannot read "/tmp/biomed_ner_regress/bad_config/config.json"%' AS broken_config;
\! cp "$BIOMED_NER_FIXTURE/config.json" "$BIOMED_NER_FIXTURE/tokenizer.json" /tmp/biomed_ner_regress/bad_weights/
\! printf 'not safetensors' > /tmp/biomed_ner_regress/bad_weights/model.safetensors
SET biomed_ner.model = '/tmp/biomed_ner_regress/bad_weights';
SELECT expect_error($$SELECT biomed_ner('fever')$$) LIKE 'F0000: cannot read "/tmp/biomed_ner_regress/bad_weights/model.safetensors"%' AS broken_weights;
-- A damaged SentencePiece model in a folder without tokenizer.json.
\! mkdir -p /tmp/biomed_ner_regress/bad_spm
\! cp "$BIOMED_NER_FIXTURE/../deberta_spm/config.json" "$BIOMED_NER_FIXTURE/../deberta_spm/model.safetensors" /tmp/biomed_ner_regress/bad_spm/
\! head -c 30000 "$BIOMED_NER_FIXTURE/../deberta_spm/spm.model" > /tmp/biomed_ner_regress/bad_spm/spm.model
SET biomed_ner.model = '/tmp/biomed_ner_regress/bad_spm';
SELECT expect_error($$SELECT biomed_ner('fever')$$) LIKE 'F0000: cannot read "/tmp/biomed_ner_regress/bad_spm/spm.model": not a SentencePiece model%' AS broken_spm;
\! rm -rf /tmp/biomed_ner_regress
SET biomed_ner.model = :'fixture';
SELECT jsonb_array_length(biomed_ner('Fever.')) > 0 AS works_again;
SET biomed_ner.max_chars = 5;
SELECT expect_error($$SELECT biomed_ner('fever and cough')$$);
SELECT expect_error($$SELECT biomed_ner(ARRAY['ok', 'fever and cough'])$$);
SELECT biomed_ner('fever') IS NOT NULL AS at_the_limit;
RESET biomed_ner.max_chars;
