-- biomed_ner_entities(text): one row per entity, for LATERAL joins.
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
SELECT entity_group, word, start_pos, end_pos, round(score::numeric, 3) AS score FROM biomed_ner_entities('Biopsy confirmed SCC.');
CREATE TABLE notes(id int PRIMARY KEY, body text);
INSERT INTO notes VALUES (1, 'Fever and cough.'), (2, NULL), (3, ''), (4, 'Aspirin 81 mg.');
SELECT n.id, count(e.word) AS entities,
       count(e.word) = coalesce(jsonb_array_length(biomed_ner(n.body)), 0) AS matches_jsonb,
       bool_and(substr(n.body, e.start_pos + 1, e.end_pos - e.start_pos) = e.word) AS slices
FROM notes n LEFT JOIN LATERAL biomed_ner_entities(n.body) e ON true
GROUP BY n.id ORDER BY n.id;
DROP TABLE notes;
