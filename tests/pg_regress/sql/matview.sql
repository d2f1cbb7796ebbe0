-- A materialized view of extracted entities, and its REFRESH.
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
CREATE TABLE notes(id int PRIMARY KEY, body text);
INSERT INTO notes VALUES (1, 'Fever and cough.'), (2, 'Aspirin 81 mg daily.');
CREATE MATERIALIZED VIEW note_entities AS
  SELECT n.id, e.entity_group, e.word, e.start_pos, e.end_pos, e.score
  FROM notes n, LATERAL biomed_ner_entities(n.body) e;
SELECT count(*) = (SELECT sum(jsonb_array_length(biomed_ner(body))) FROM notes) AS complete FROM note_entities;
INSERT INTO notes VALUES (3, 'Hemoglobin 9.8 g/dL.');
SELECT count(DISTINCT id) AS notes_before_refresh FROM note_entities;
REFRESH MATERIALIZED VIEW note_entities;
SELECT count(DISTINCT id) AS notes_after_refresh FROM note_entities;
SELECT count(*) = (SELECT sum(jsonb_array_length(biomed_ner(body))) FROM notes) AS complete FROM note_entities;
DROP MATERIALIZED VIEW note_entities;
DROP TABLE notes;
