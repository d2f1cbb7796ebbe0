-- biomed_ner_html(note [, entities]): one note as an HTML fragment, each entity a <mark> whose
-- text is the note's slice, the text HTML-escaped. (The fragment's <style> is left out of what
-- is shown here: shown is what follows it.)
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
CREATE FUNCTION after_style(html text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN html LIKE '<div class="biomed-ner"><style>%</style>%' THEN substring(html from '</style>(.*)$') ELSE 'NO STYLE: ' || html END $$;
-- The marks of a fragment: type, offsets and text, in order.
CREATE FUNCTION marks(html text) RETURNS TABLE (entity_group text, start_pos int, end_pos int, assertion text, word text)
LANGUAGE sql IMMUTABLE AS $$
  SELECT m[1], m[2]::int, m[3]::int, m[4], m[5]
  FROM regexp_matches(html, '<mark class="ent" data-entity-group="([^"]*)" data-start="(\d+)" data-end="(\d+)"(?: data-score="[^"]*")?(?: data-assertion="([^"]*)")? title="[^"]*" style="[^"]*">([^<]*)</mark>', 'g') m $$;
-- Given entities: markup in the note is text; & < > " and a carriage return are escaped.
SELECT after_style(biomed_ner_html(E'<script>alert(1)</script> & "fever"\r\n<b>cough</b>',
  '[{"entity_group": "Sign_symptom", "start": 29, "end": 34, "score": 0.91}, {"entity_group": "Sign_symptom", "start": 40, "end": 45}]'));
SELECT after_style(biomed_ner_html('<img src=x onerror=alert(1)>', '[]'));
-- Offsets are characters: after characters of several bytes, the slices are the same.
SELECT * FROM marks(biomed_ner_html('Fièvre 🤒 et toux, fever.', '[{"entity_group": "Sign_symptom", "start": 0, "end": 6}, {"entity_group": "Sign_symptom", "start": 7, "end": 8}, {"entity_group": "Sign_symptom", "start": 19, "end": 24}]'));
-- Assertion and score shown; entity (aggregation none) without its B-/I- prefix; other keys ignored;
-- an overlapping entity and an empty one left out.
SELECT after_style(biomed_ner_html('No fever today.', format('[{"entity": "B-Sign_symptom", "start": 3, "end": 8, "score": 1e309, "assertion": "absent", "deep": %s}, {"entity_group": "Date", "start": 5, "end": 14}, {"entity_group": "Date", "start": 9, "end": 9}]', repeat('[', 200) || repeat(']', 200))::jsonb));
-- The model's entities (the bundled model's): the same spans and words as biomed_ner gives.
SET biomed_ner.model = '';
WITH n(note) AS (VALUES ('A 48-year-old female presented with vaginal bleeding and abnormal Pap smears.'),
                        ('No fever, but possible pneumonia; aspirin 81 mg daily. Fièvre 🤒.'))
SELECT note, (SELECT array_agg(m.entity_group || ' ' || m.start_pos || '-' || m.end_pos || ' ' || m.word) FROM marks(biomed_ner_html(note)) m)
           = (SELECT array_agg(e->>'entity_group' || ' ' || (e->>'start') || '-' || (e->>'end') || ' ' || (e->>'word')) FROM jsonb_array_elements(biomed_ner(note)) e)
       AS same_as_biomed_ner,
       (SELECT count(*) FROM marks(biomed_ner_html(note))) > 0 AS has_marks
FROM n;
-- With biomed_ner.assertion on, each mark carries its assertion, as biomed_ner gives it.
SET biomed_ner.assertion = on;
SELECT (SELECT array_agg(m.assertion) FROM marks(biomed_ner_html(t)) m) = (SELECT array_agg(e->>'assertion') FROM jsonb_array_elements(biomed_ner(t)) e)
       AS same_assertions,
       (SELECT array_agg(DISTINCT m.assertion ORDER BY m.assertion) FROM marks(biomed_ner_html(t)) m) AS kinds
FROM (VALUES ('The patient denies chest pain; no fever. Possible pneumonia was considered.')) v(t);
RESET biomed_ner.assertion;
SET biomed_ner.model = :'fixture';
SELECT biomed_ner_html(NULL) IS NULL AS null_note, biomed_ner_html('x', NULL) IS NULL AS null_entities;
SELECT after_style(biomed_ner_html('', '[]')) AS empty;
-- Bad entities: 22023 naming the entity.
SELECT expect_error($$SELECT biomed_ner_html('fever', '{"start": 0}')$$);
SELECT expect_error($$SELECT biomed_ner_html('fever', '[{"entity_group": "S", "start": 3, "end": 1}]')$$);
SELECT expect_error($$SELECT biomed_ner_html('fever', '[{"entity_group": "S", "start": 0, "end": 6}]')$$);
SELECT expect_error($$SELECT biomed_ner_html('fever', '[{"entity_group": "S", "start": -1, "end": 2}]')$$);
SELECT expect_error($$SELECT biomed_ner_html('fever', '[{"entity_group": 7, "start": 0, "end": 2}]')$$);
SELECT expect_error($$SELECT biomed_ner_html('fever', '[{"start": 0, "end": 2}]')$$);
SELECT expect_error($$SELECT biomed_ner_html('fever', '[{"entity_group": "S", "start": 0, "end": 2, "score": "high"}]')$$);
SELECT expect_error($$SELECT biomed_ner_html('fever', '[{"entity_group": "S", "start": 0, "end": 2, "assertion": 1}]')$$);
SELECT expect_error($$SELECT biomed_ner_html('fever', '[3]')$$);
-- What one call writes is bounded before it is written: 54000, not gigabytes (a type name
-- of '&' is written escaped, three times).
SELECT expect_error($$SELECT biomed_ner_html('ab', jsonb_build_array(jsonb_build_object('start', 0, 'end', 1, 'entity_group', repeat('&', 15000000))))$$);
-- biomed_ner.max_chars applies, with or without entities.
SET biomed_ner.max_chars = 10;
SELECT expect_error($$SELECT biomed_ner_html(repeat('a', 11), '[]')$$);
SELECT expect_error($$SELECT biomed_ner_html(repeat('a', 11))$$);
RESET biomed_ner.max_chars;
DROP FUNCTION after_style(text), marks(text);
