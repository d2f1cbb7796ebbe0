-- biomed_ner_annotate(text_column, jsonb_column) on INSERT, multi-row INSERT, COPY, UPDATE.
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
CREATE TABLE notes(id int PRIMARY KEY, body text, entities jsonb);
CREATE TRIGGER annotate BEFORE INSERT OR UPDATE ON notes
  FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('body', 'entities');
INSERT INTO notes(id, body) VALUES (1, 'Fever and cough for 3 days.');
INSERT INTO notes(id, body) VALUES (2, 'Aspirin 81 mg daily.'), (3, NULL), (4, '');
COPY notes(id, body) FROM STDIN;
5	Hemoglobin 9.8 g/dL.
6	\N
\.
SELECT id, entities = biomed_ner(body) AS annotated, entities IS NULL AS null_entities, entities = '[]' AS empty
FROM notes ORDER BY id;
UPDATE notes SET body = 'Now chest pain.' WHERE id = 1;
UPDATE notes SET body = 'Cough.' WHERE id = 3;
SELECT id, entities = biomed_ner(body) AS annotated FROM notes WHERE id IN (1, 3) ORDER BY id;
-- A failing trigger aborts its statement and loses nothing.
SET biomed_ner.max_chars = 10;
SELECT expect_error($$INSERT INTO notes(id, body) VALUES (7, 'far longer than ten characters')$$);
SELECT expect_error($$UPDATE notes SET body = 'far longer than ten characters' WHERE id = 2$$);
RESET biomed_ner.max_chars;
SELECT count(*) AS rows, count(*) FILTER (WHERE id = 2 AND body = 'Aspirin 81 mg daily.') AS untouched FROM notes;
-- Bad arguments name the column.
CREATE TABLE bad(id int, body text, n int, j jsonb);
CREATE TRIGGER t1 BEFORE INSERT ON bad FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('nope', 'j');
SELECT expect_error($$INSERT INTO bad VALUES (1, 'x', 1, NULL)$$);
DROP TRIGGER t1 ON bad;
CREATE TRIGGER t2 BEFORE INSERT ON bad FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('body', 'n');
SELECT expect_error($$INSERT INTO bad VALUES (1, 'x', 1, NULL)$$);
DROP TRIGGER t2 ON bad;
CREATE TRIGGER t3 BEFORE INSERT ON bad FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('body');
SELECT expect_error($$INSERT INTO bad VALUES (1, 'x', 1, NULL)$$);
DROP TRIGGER t3 ON bad;
CREATE TRIGGER t4 AFTER INSERT ON bad FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('body', 'j');
SELECT expect_error($$INSERT INTO bad VALUES (1, 'x', 1, NULL)$$);
SELECT count(*) AS bad_rows FROM bad;
DROP TABLE bad;
DROP TABLE notes;
