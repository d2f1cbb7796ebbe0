-- biomed_ner_bulk(query, batch_rows): batched, streaming annotation of a whole query.
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
CREATE TABLE notes(id bigint PRIMARY KEY, body text);
INSERT INTO notes SELECT g, CASE WHEN g % 7 = 0 THEN NULL WHEN g % 11 = 0 THEN ''
  ELSE 'Note ' || g || ': fever ' || repeat('and cough ', g % 5) || 'for ' || g || ' days.' END
FROM generate_series(1, 40) g;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE same_entities(b.entities, biomed_ner(n.body))) AS equal_to_per_row
FROM biomed_ner_bulk('SELECT id, body FROM notes') b JOIN notes n USING (id);
SELECT count(*) AS rows FROM biomed_ner_bulk('SELECT id, body FROM notes ORDER BY id;', 1);
SELECT count(*) AS rows FROM biomed_ner_bulk('SELECT id, body FROM notes WHERE id <= 7', 3);
SELECT count(*) AS rows FROM biomed_ner_bulk('SELECT id, body FROM notes WHERE false');
-- Extra columns are ignored; an int id is fine.
SELECT id, entities IS NULL AS null_entities FROM biomed_ner_bulk('SELECT id::int, body, 42 FROM notes WHERE id IN (7, 11)') ORDER BY id;
SELECT expect_error($$SELECT * FROM biomed_ner_bulk('SELECT id, body FROM notes', 0)$$);
SELECT expect_error($$SELECT * FROM biomed_ner_bulk('SELECT nothing FROM notes')$$);
SELECT expect_error($$SELECT * FROM biomed_ner_bulk('SELECT id FROM notes')$$);
DROP TABLE notes;
