-- The bundled model (biomed_ner.model = '', the default without a server setting; with the
-- shared service running another model, this session's calls run in its own backend): real
-- entities from the README's sentence.
SET biomed_ner.model = '';
SELECT biomed_ner_info()->>'model' AS model, biomed_ner_info()->>'bundled' AS bundled,
       biomed_ner_info()->>'architecture' AS architecture;
-- The int8 kernel this CPU uses (the same name `biomed-ner --version` gives).
SELECT biomed_ner_info()->>'cpu_kernels' IN ('amx', 'avx512-vnni', 'avx2', 'portable') AS known_kernel;
-- Types found (the exact spans and scores belong to the model; these three must be there).
SELECT ARRAY['Age', 'Sex', 'Sign_symptom'] <@ array_agg(e->>'entity_group') AS has_age_sex_sign,
       bool_and(substr(t, (e->>'start')::int + 1, (e->>'end')::int - (e->>'start')::int) = e->>'word') AS words_are_slices
FROM (VALUES ('A 48-year-old female presented with vaginal bleeding and abnormal Pap smears.')) v(t),
     jsonb_array_elements(biomed_ner(t)) e;
SELECT e->>'word' AS word FROM jsonb_array_elements(
    biomed_ner('A 48-year-old female presented with vaginal bleeding and abnormal Pap smears.')) e
WHERE e->>'entity_group' IN ('Age', 'Sex') ORDER BY (e->>'start')::int;
