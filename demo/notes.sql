-- The demo: a small notes table, annotated three ways. Written for this project (no real
-- patient data).
CREATE EXTENSION biomed_ner;
CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL, entities jsonb);
CREATE TRIGGER annotate BEFORE INSERT OR UPDATE ON notes
    FOR EACH ROW EXECUTE FUNCTION biomed_ner_annotate('body', 'entities');
INSERT INTO notes (id, body) VALUES
 (1, 'A 48-year-old female presented with vaginal bleeding and abnormal Pap smears.'),
 (2, 'He was treated with cisplatin 40 mg/m2 weekly and pelvic radiotherapy for 6 weeks.'),
 (3, 'Computed tomography of the chest revealed a 3 cm mass in the right upper lobe.'),
 (4, 'Laboratory tests showed hemoglobin 9.8 g/dL and a white cell count of 12,400/mm3.'),
 (5, 'The 7-year-old boy had fever, cough and severe dyspnea for three days.');
\echo
\echo 'Entities of each note (filled by the trigger on INSERT):'
SELECT n.id, e.entity_group, e.word, e.start_pos, e.end_pos, round(e.score::numeric, 3) AS score
FROM notes n, LATERAL biomed_ner_entities(n.body) e
ORDER BY n.id, e.start_pos;
\echo 'Character offsets are exact: substr(body, start + 1, end - start) = word'
SELECT bool_and(substr(n.body, (e->>'start')::int + 1, (e->>'end')::int - (e->>'start')::int) = e->>'word') AS offsets_exact
FROM notes n, jsonb_array_elements(n.entities) e;
\echo 'The model in use:'
SELECT key, value FROM jsonb_each(biomed_ner_info() - 'labels' - 'entity_types') ORDER BY key;
