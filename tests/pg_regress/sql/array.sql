-- biomed_ner(text[]): one batched call, same order, each element as biomed_ner(element).
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
SELECT i, same_entities(a.e, s.e) AS same
FROM unnest(biomed_ner(ARRAY['Fever and cough.', NULL, '', 'Aspirin 81 mg daily.'])) WITH ORDINALITY a(e, i)
JOIN unnest(ARRAY[biomed_ner('Fever and cough.'), NULL, '[]'::jsonb, biomed_ner('Aspirin 81 mg daily.')]) WITH ORDINALITY s(e, j) ON i = j
ORDER BY i;
SELECT cardinality(biomed_ner(ARRAY[]::text[])) AS empty_array_gives;
SELECT biomed_ner(NULL::text[]) IS NULL AS null_array;
SELECT array_length(biomed_ner(array_agg('Note number ' || g || ' mentions fever.')), 1) AS n
FROM generate_series(1, 50) g;
