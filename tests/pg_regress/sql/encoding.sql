-- Databases whose encoding is not UTF8: text is converted for the model, offsets stay in the
-- database's characters (substr matches), words come back in the database's encoding, and
-- text that cannot be read as Unicode is refused with 22021. Every SQL entry point.
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
-- The same notes in this UTF8 database, for comparison below: types, words and offsets (the
-- scores' last digits depend on the CPU's kernels, not on the encoding).
SELECT md5((SELECT jsonb_agg(e - 'score') FROM jsonb_array_elements(biomed_ner(t)) e)::text) AS utf8_entities
FROM (VALUES ('Fièvre à 39 °C, toux sèche; café crème × 2 - naïve patient.')) v(t);
CREATE DATABASE biomed_ner_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
CREATE DATABASE biomed_ner_sql_ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
CREATE DATABASE biomed_ner_euc_jis_2004 ENCODING 'EUC_JIS_2004' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c biomed_ner_latin1
SET client_encoding = 'UTF8';
\set ECHO none
\i tests/pg_regress/new_database.sql
\set ECHO all
SHOW server_encoding;
-- The same entities as in UTF8, spans in characters.
SELECT md5(convert_to((SELECT jsonb_agg(e - 'score') FROM jsonb_array_elements(biomed_ner(t)) e)::text, 'UTF8')) AS latin1_entities
FROM (VALUES ('Fièvre à 39 °C, toux sèche; café crème × 2 - naïve patient.')) v(t);
SELECT count(*) AS entities,
       bool_and(substr(t, (e->>'start')::int + 1, (e->>'end')::int - (e->>'start')::int) = e->>'word') AS substr_matches
FROM (VALUES ('Fièvre à 39 °C, toux sèche; café crème - naïve patient.')) v(t), jsonb_array_elements(biomed_ner(t)) e;
-- The array form: the reported crash (signal 11) and the silently empty result.
SELECT biomed_ner(ARRAY[E'\351']) IS NOT NULL AS no_crash;
SELECT r[1] = biomed_ner('café fever') AS array_equals_scalar, r[2] IS NULL AS null_stays_null
FROM (SELECT biomed_ner(ARRAY['café fever', NULL]) AS r) a;
SELECT bool_and(substr(t, start_pos + 1, end_pos - start_pos) = word) AS entities_substr
FROM (VALUES ('Fièvre élevée et toux sèche chez un patient âgé.')) v(t), biomed_ner_entities(t);
CREATE TABLE notes (id int PRIMARY KEY, body text, entities jsonb);
CREATE TRIGGER annotate BEFORE INSERT OR UPDATE ON notes
    FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('body', 'entities');
INSERT INTO notes (id, body) VALUES (1, 'Fièvre et toux sèche.'), (2, 'Crème appliquée.'), (3, NULL);
SELECT id, entities = biomed_ner(body) AS trigger_matches FROM notes ORDER BY id;
SELECT bool_and(same_entities) AS bulk_matches FROM (
    SELECT b.entities IS NOT DISTINCT FROM biomed_ner(n.body) AS same_entities
    FROM biomed_ner_bulk('SELECT id, body FROM notes') b JOIN notes n USING (id)) s;
-- A query with non-ASCII constants cannot pass through SPI from Rust here: refused clearly.
SELECT expect_error($$SELECT * FROM biomed_ner_bulk('SELECT 1, ''fièvre''::text')$$);
\c biomed_ner_euc_jis_2004
SET client_encoding = 'UTF8';
\set ECHO none
\i tests/pg_regress/new_database.sql
\set ECHO all
-- Here one database character can be two code points (か゚ is U+304B U+309A): spans are mapped
-- back to the database's characters, and substr still matches.
SELECT length('か゚') AS database_chars, octet_length(convert_to('か゚', 'UTF8')) AS utf8_bytes_of_two_code_points;
SELECT count(*) AS entities,
       bool_and(substr(t, (e->>'start')::int + 1, (e->>'end')::int - (e->>'start')::int) = e->>'word') AS substr_matches,
       bool_and((e->>'end')::int <= length(t)) AS inside
FROM (VALUES ('か゚ fever か゚か゚ cough and か゚ pain')) v(t), jsonb_array_elements(biomed_ner(t)) e;
SELECT bool_and(substr(t, start_pos + 1, end_pos - start_pos) = word) AS entities_substr
FROM (VALUES ('か゚ fever か゚か゚ cough and か゚ pain')) v(t), biomed_ner_entities(t);
\c biomed_ner_sql_ascii
SET client_encoding = 'SQL_ASCII';
\set ECHO none
\i tests/pg_regress/new_database.sql
\set ECHO all
-- ASCII works; bytes over 127 have no meaning in SQL_ASCII: 22021 from every entry point.
SELECT jsonb_array_length(biomed_ner('Fever and cough.')) >= 0 AS ascii_works;
SELECT expect_error($$SELECT biomed_ner(E'caf\351')$$);
SELECT expect_error($$SELECT biomed_ner(ARRAY['ok', E'caf\351'])$$);
SELECT expect_error($$SELECT * FROM biomed_ner_entities(E'caf\351')$$);
CREATE TABLE notes (id int, body text, entities jsonb);
CREATE TRIGGER annotate BEFORE INSERT ON notes FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('body', 'entities');
SELECT expect_error($$INSERT INTO notes VALUES (1, E'caf\351', NULL)$$);
SELECT count(*) AS rows_after_failed_insert FROM notes;
SELECT expect_error($$SELECT * FROM biomed_ner_bulk('SELECT 1, E''caf\351''')$$);
\c biomed_ner_regress
