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
-- Quotes, numbers and keys of the caller's objects come back as written: no number is rounded,
-- an "assertion" the object had is replaced; values of other keys are never read.
SELECT biomed_ner_assert('No fever.', format('[{"start": 3, "end": 8, "score": 0.123456789012345678901234567890, "id": 123456789012345678901234567890, "assertion": "old", "deep": %s1%s, "big": 1e309}]',
                         repeat('[', 200), repeat(']', 200))::jsonb) #- '{0,deep}' #- '{0,big}' AS asserted,
       biomed_ner_assert('No fever.', format('[{"start": 3, "end": 8, "big": 1e309, "deep": %s1%s}]', repeat('[', 200), repeat(']', 200))::jsonb)
       = format('[{"start": 3, "end": 8, "big": 1e309, "deep": %s1%s, "assertion": "absent"}]', repeat('[', 200), repeat(']', 200))::jsonb AS deep_and_big_kept;
-- Bad values are shown cut; a note over biomed_ner.max_chars is refused as in biomed_ner.
SELECT expect_error(format($$SELECT biomed_ner_assert('x', '[{"start": "%s", "end": 1}]')$$, repeat('a', 100)));
SELECT expect_error($$SELECT biomed_ner_assert('x', '[{"start": 1e309, "end": 1}]')$$);
SELECT expect_error($$SELECT biomed_ner_assert('x', '[{"start": [0], "end": 1}]')$$);
SELECT expect_error($$SELECT biomed_ner_assert('x', '"[]"')$$);
SET biomed_ner.max_chars = 10;
SELECT expect_error($$SELECT biomed_ner_assert(repeat('x', 11), '[]')$$);
RESET biomed_ner.max_chars;
-- One call asserts at most 100,000 entities (its assertion step does not answer a cancel).
SELECT expect_error($$SELECT biomed_ner_assert('x', (SELECT jsonb_agg(jsonb_build_object('start', 0, 'end', 1)) FROM generate_series(1, 100001)))$$);
SELECT jsonb_array_length(biomed_ner_assert('x', (SELECT jsonb_agg(jsonb_build_object('start', 0, 'end', 1)) FROM generate_series(1, 100000)))) AS asserted;

-- biomed_ner.assertion = on adds the key through every entry point (bundled model); off, the
-- pipeline's shape is unchanged.
SET biomed_ner.model = '';
CREATE TEMP TABLE notes (id int PRIMARY KEY, body text);
INSERT INTO notes VALUES (1, 'The patient denied fever, chills or night sweats.'),
                         (2, 'A 48-year-old female presented with vaginal bleeding.'),
                         (3, 'Pneumonia could not be excluded.'), (4, ''), (5, NULL);
CREATE FUNCTION assertions(e jsonb) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT array_agg(x->>'assertion' ORDER BY i) FROM jsonb_array_elements(e) WITH ORDINALITY p(x, i)
$$;
SHOW biomed_ner.assertion;
SELECT bool_or(e ? 'assertion') AS has_key FROM notes, jsonb_array_elements(biomed_ner(body)) e;
SELECT count(*) FILTER (WHERE assertion IS NOT NULL) AS asserted FROM notes, biomed_ner_entities(body);
SET biomed_ner.assertion = on;
CREATE TEMP TABLE scalar AS SELECT id, biomed_ner(body) AS e FROM notes;
-- Each entity's assertion, the same as biomed_ner_assert gives for the same entities;
-- unaligned, so that the command line's test finds these lines (biomed-ner --assertion on the
-- same notes gives the same assertions).
\a
SELECT id, assertions(e) AS assertion, assertions(biomed_ner_assert(body, e)) = assertions(e) AS same_as_assert
FROM notes JOIN scalar USING (id) ORDER BY id;
\a
SELECT id, o->>'word' AS word, o->>'entity_group' AS entity_group, o->>'assertion' AS assertion
FROM scalar, jsonb_array_elements(e) x(o) WHERE id IN (1, 3) ORDER BY id, (o->>'start')::int;
-- The array form, biomed_ner_entities, biomed_ner_bulk and the trigger give the same.
SELECT bool_and(assertions(a) IS NOT DISTINCT FROM assertions(s.e)) AS array_same
FROM (SELECT array_agg(id ORDER BY id) ids, biomed_ner(array_agg(body ORDER BY id)) r FROM notes) b,
     unnest(b.ids, b.r) u(id, a) JOIN scalar s USING (id);
SELECT bool_and(x.assertion = y.o->>'assertion' AND x.start_pos = (y.o->>'start')::int) AS entities_same, count(*) > 0 AS some
FROM scalar s JOIN notes n USING (id),
     LATERAL (SELECT row_number() OVER () AS i, * FROM biomed_ner_entities(n.body)) x,
     LATERAL (SELECT o FROM jsonb_array_elements(s.e) WITH ORDINALITY q(o, j) WHERE j = x.i) y;
SELECT count(*) AS rows, bool_and(assertions(b.entities) IS NOT DISTINCT FROM assertions(s.e)) AS bulk_same
FROM biomed_ner_bulk('SELECT id, body FROM notes', 2) b JOIN scalar s USING (id);
CREATE TEMP TABLE annotated (id int PRIMARY KEY, body text, entities jsonb);
CREATE TRIGGER annotate BEFORE INSERT ON annotated FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('body', 'entities');
INSERT INTO annotated (id, body) SELECT id, body FROM notes;
SELECT bool_and(assertions(a.entities) IS NOT DISTINCT FROM assertions(s.e)) AS trigger_same FROM annotated a JOIN scalar s USING (id);
-- A watched table's batches follow the setting of the session that drains them.
CREATE TABLE watched_assert (id int PRIMARY KEY, body text, entities jsonb);
INSERT INTO watched_assert (id, body) SELECT id, body FROM notes;
SELECT biomed_ner_watch('watched_assert', 'body', 'entities');
SELECT biomed_ner_queue_drain('watched_assert') AS annotated;
SELECT bool_and(assertions(w.entities) IS NOT DISTINCT FROM assertions(s.e)) AS watched_same FROM watched_assert w JOIN scalar s USING (id);
SELECT biomed_ner_unwatch('watched_assert');
DROP TABLE watched_assert;
RESET biomed_ner.assertion;
RESET biomed_ner.model;
