-- Every architecture through SQL: the fixture model of each family (tests/fixtures/models)
-- loads by its config.json's model_type, says which it is, and gives spans that substr finds;
-- deberta_spm and xlmr_spm ship a SentencePiece model instead of tokenizer.json.
\getenv fixture BIOMED_NER_FIXTURE
CREATE TEMP TABLE arch_notes(body text);
INSERT INTO arch_notes VALUES
    ('Biopsy confirmed SCC of the cervix.'),
    ('She received cisplatin 40 mg/m2 weekly and CRP 45 mg/L.'),
    ('Café naïve résumé, 患者发热三天, emoji 😷 and [CLS] <pad> literal specials.');
CREATE FUNCTION arch_check(folder text)
RETURNS TABLE(architecture text, entities bigint, bad_spans bigint) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('biomed_ner.model', folder, false);
    RETURN QUERY
    SELECT biomed_ner_info()->>'architecture', count(e),
           count(e) FILTER (WHERE substr(n.body, (e->>'start')::int + 1, (e->>'end')::int - (e->>'start')::int) <> e->>'word')
    FROM arch_notes n LEFT JOIN LATERAL jsonb_array_elements(biomed_ner(n.body)) e ON true;
END $$;
SELECT m AS model, c.*
FROM unnest(ARRAY['v3_base_like', 'bert_wordpiece', 'bert_vocab_txt', 'distilbert', 'roberta_bpe',
                  'xlmr_unigram', 'electra', 'deberta_spm', 'xlmr_spm']) m,
     arch_check(:'fixture' || '/../' || m) c;
-- A folder with spm.model gives what the same folder gives with the tokenizer.json that
-- transformers converts from it (scripts/fixtures-for-postgres makes deberta_spm_json).
CREATE FUNCTION notes_under(folder text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('biomed_ner.model', folder, false);
    RETURN (SELECT jsonb_agg(biomed_ner(body) ORDER BY body) FROM arch_notes);
END $$;
SELECT notes_under(:'fixture' || '/../deberta_spm') = notes_under(:'fixture' || '/../deberta_spm_json') AS spm_equals_tokenizer_json,
       jsonb_array_length(jsonb_path_query_array(notes_under(:'fixture' || '/../deberta_spm'), '$[*][*]')) AS spm_entities;
DROP FUNCTION notes_under(text);
-- The same notes in one batched call and one by one give the same entities (scores may differ
-- in their last digits).
SELECT set_config('biomed_ner.model', :'fixture' || '/../roberta_bpe', false) IS NOT NULL AS roberta;
CREATE FUNCTION spans(j jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT coalesce(jsonb_agg(e - 'score'), '[]') FROM jsonb_array_elements(j) e $$;
SELECT (SELECT array_agg(spans(x)) FROM unnest(biomed_ner(array_agg(body ORDER BY body))) x)
       = array_agg(spans(biomed_ner(body)) ORDER BY body) AS batched_equals_rows
FROM arch_notes;
DROP FUNCTION spans(jsonb);
RESET biomed_ner.model;
DROP FUNCTION arch_check(text);
