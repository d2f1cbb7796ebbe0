-- biomed_ner(text): shape, NULL, empty and tiny inputs (fixture model).
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
-- Scores rounded: their last bits depend on the CPU's matrix kernels.
SELECT e->>'entity_group' AS entity_group, e->>'word' AS word, (e->>'start')::int AS start, (e->>'end')::int AS "end",
       round((e->>'score')::numeric, 3) AS score
FROM jsonb_array_elements(biomed_ner('Biopsy confirmed SCC.')) e;
SELECT biomed_ner(NULL) IS NULL AS null_gives_null;
SELECT biomed_ner('') AS empty;
SELECT biomed_ner('   ') AS only_spaces;
SELECT jsonb_array_length(biomed_ner('x')) AS one_char;
-- Every entity has the pipeline's keys, in order, and a score in (0, 1].
SELECT bool_and(e ?& ARRAY['entity_group', 'score', 'word', 'start', 'end']
                AND (e->>'score')::float8 > 0 AND (e->>'score')::float8 <= 1) AS well_formed
FROM jsonb_array_elements(biomed_ner('A 48-year-old female presented with vaginal bleeding.')) e;
-- STABLE, PARALLEL SAFE, STRICT.
SELECT p.oid::regprocedure, provolatile, proparallel, proisstrict
FROM pg_proc p WHERE proname LIKE 'biomed_ner%' ORDER BY 1::text;
