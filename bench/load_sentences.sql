-- Loads a JSON-lines file of notes ({"text": ...} per line, as bench/make_base_model.py writes)
-- into a new table (id bigint, body text). Read from standard input by psql:
--   psql -v notes=FILE -v table=NAME < bench/load_sentences.sql
CREATE TABLE :"table" (id bigint PRIMARY KEY, body text);
CREATE TEMP TABLE raw (line text);
\set copy '\\copy raw FROM ' :'notes' ' WITH (FORMAT csv, DELIMITER E''\\x01'', QUOTE E''\\x02'')'
:copy
INSERT INTO :"table" SELECT row_number() OVER (), line::jsonb->>'text' FROM raw;
DROP TABLE raw;
