-- Clinical assertion of given entities: biomed_ner_assert(note, entities) adds "assertion"
-- (present, absent, possible) to each entity and keeps every other key; no model is loaded.
SELECT e->>'word' AS word, e->>'assertion' AS assertion
FROM jsonb_array_elements(biomed_ner_assert(
    'She denied fever, chills or night sweats. Pneumonia could not be excluded. Cough for two days.',
    '[{"entity_group": "Sign_symptom", "word": "fever", "start": 11, "end": 16},
      {"entity_group": "Sign_symptom", "word": "night sweats", "start": 28, "end": 40},
      {"entity_group": "Disease_disorder", "word": "Pneumonia", "start": 42, "end": 51},
      {"entity_group": "Sign_symptom", "word": "Cough", "start": 75, "end": 80},
      {"entity_group": "Age", "word": "two", "start": 85, "end": 88, "note": "kept"}]')) e;
-- Offsets are characters: text in other scripts before the entity does not move it.
SELECT biomed_ner_assert('患者 😷: no rash.', '[{"start": 9, "end": 13}]');
-- Unsorted and overlapping entities are asserted each on its own; [] gives [].
SELECT biomed_ner_assert('No fever. Fever.', '[{"start": 10, "end": 15}, {"start": 3, "end": 8}, {"start": 0, "end": 8}]');
SELECT biomed_ner_assert('anything', '[]');
SELECT biomed_ner_assert(NULL, '[]') IS NULL AS null_note, biomed_ner_assert('x', NULL) IS NULL AS null_entities;
-- Stored results of biomed_ner can be asserted later.
SELECT jsonb_array_length(biomed_ner_assert(t, biomed_ner(t))) = jsonb_array_length(biomed_ner(t)) AS same_length,
       (SELECT bool_and(e ? 'assertion') FROM jsonb_array_elements(biomed_ner_assert(t, biomed_ner(t))) e) AS every_entity
FROM (VALUES ('A 48-year-old female presented with vaginal bleeding and no fever.')) v(t);
-- Bad input: 22023 with the reason and a hint, never a crash.
SELECT expect_error($$SELECT biomed_ner_assert('x', '{"start": 0}')$$);
SELECT expect_error($$SELECT biomed_ner_assert('x', '[1]')$$);
SELECT expect_error($$SELECT biomed_ner_assert('x', '[{"end": 1}]')$$);
SELECT expect_error($$SELECT biomed_ner_assert('x', '[{"start": 0.5, "end": 1}]')$$);
SELECT expect_error($$SELECT biomed_ner_assert('x', '[{"start": "0", "end": 1}]')$$);
SELECT expect_error($$SELECT biomed_ner_assert('x', '[{"start": -1, "end": 1}]')$$);
SELECT expect_error($$SELECT biomed_ner_assert('x', '[{"start": 0, "end": 2}]')$$);
SELECT expect_error($$SELECT biomed_ner_assert('xyz', '[{"start": 2, "end": 1}]')$$);
SELECT expect_error($$SELECT biomed_ner_assert('x', '[{"start": 0, "end": 1, "entity_group": 5}]')$$);
SELECT expect_error($$SELECT biomed_ner_assert('x', '[{"start": 0, "end": 99999999999999999999}]')$$);
-- Hostile texts.
SELECT count(*) AS asserted FROM (
    SELECT biomed_ner_assert(t, jsonb_build_array(jsonb_build_object('start', 0, 'end', length(t))))
    FROM (VALUES (repeat('no ', 20000)), (repeat('e' || chr(769), 5000)), (E'\t\r\n'), ('?????'),
                 (repeat('denied fever, ', 3000))) v(t)) s;
