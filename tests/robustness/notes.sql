-- Hostile clinical notes for the robustness scripts: fuzz_note(seed, latin1) builds a note
-- from pieces (words, punctuation, digits, whitespace and control characters, accents, CJK,
-- Arabic, emoji with joiners, combining-mark floods, zero-width and private-use characters,
-- very long words), deterministic for a seed. With latin1 only LATIN1 characters are used.
CREATE OR REPLACE FUNCTION fuzz_note(seed int, latin1 boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  pieces text[] := ARRAY['fever', 'cough', 'Patient', 'denied', 'chest pain', 'mg', 'CT', 'biopsy', 'SCC',
                         ' ', ' ', '  ', E'\t', E'\n', E'\r\n', '.', ',', ';', '(', ')', '-', '/', '%', '°C',
                         '39.5', '120/80', '2019', 'é', 'à', 'ç', 'ü', 'ß', 'Ä', 'ñ', 'µg', '×', '½', chr(160), E'\x01', E'\x1f', E'\x7f'];
  -- UTF-8 bytes, decoded only where the database can hold them (not LATIN1).
  unicode text[] := ARRAY['e682a3e88085e58f91e783ad', 'd8add985d989', 'd0b6d0b0d180', 'f09f98b7', 'f09f91a9e2808de29a95efb88f', 'f09fa9baf09f928a', '65cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81cc81', 'e2808b', 'e2808d', 'efbbbf', 'ee8080', 'f09f9880', 'e28094', 'e280a6', 'e284a2', 'efac81', 'e285ab', 'e291a0', 'e280a8'];
  out text := '';
  n int;
  r float8;
BEGIN
  PERFORM setseed((seed % 100000) / 100000.0);
  n := 1 + floor(random() * 60)::int;
  FOR i IN 1..n LOOP
    r := random();
    IF r < 0.01 THEN
      out := out || repeat(chr(97 + floor(random() * 26)::int), 200 + floor(random() * 1300)::int);  -- a long word
    ELSIF r < 0.25 AND NOT latin1 THEN
      out := out || convert_from(decode(unicode[1 + floor(random() * array_length(unicode, 1))::int], 'hex'), 'UTF8');
    ELSE
      out := out || pieces[1 + floor(random() * array_length(pieces, 1))::int];
    END IF;
    IF random() < 0.5 THEN out := out || ' '; END IF;
  END LOOP;
  RETURN out;
END $$;

-- Every entity of `entities` lies inside `note` on character boundaries, with word equal to
-- substr(note, start + 1, end - start), in order.
CREATE OR REPLACE FUNCTION spans_ok(note text, entities jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(bool_and((e->>'start')::int >= 0 AND (e->>'start')::int < (e->>'end')::int
                           AND (e->>'end')::int <= length(note)
                           AND substr(note, (e->>'start')::int + 1, (e->>'end')::int - (e->>'start')::int) = e->>'word'
                           AND (i = 1 OR (e->>'start')::int >= (entities->(i::int - 2)->>'start')::int)), true)
  FROM jsonb_array_elements(entities) WITH ORDINALITY p(e, i)
$$;

-- The soak's notes: short clinical sentences, and every tenth a fuzz note (tests/robustness/soak.sh,
-- bench/make_mixed_notes.sh).
CREATE OR REPLACE FUNCTION soak_note(i int) RETURNS text LANGUAGE sql AS $$
  SELECT CASE WHEN i % 10 = 0 THEN fuzz_note(i) ELSE
    (ARRAY['A 48-year-old female presented with vaginal bleeding and abnormal Pap smears.',
           'CT of the chest showed a 3 cm mass in the right upper lobe.',
           'He was started on aspirin 81 mg daily and atorvastatin 40 mg.',
           'Laboratory tests revealed hemoglobin of 9.8 g/dL and a platelet count of 98,000/µL.',
           'The patient denied fever, chills, or night sweats.'])[1 + i % 5] || ' (' || i || ')' END
$$;
-- biomed_ner_html's fragment: with its tags taken out and its references read, the note's text is
-- the note; each <mark>'s text is the note's slice at its data-start and data-end.
CREATE FUNCTION html_unescape(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT replace(replace(replace(replace(t, '&#13;', chr(13)), '&lt;', '<'), '&gt;', '>'), '&amp;', '&') $$;
CREATE FUNCTION html_text_ok(body text, html text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT html_unescape(regexp_replace(substring(html from '<div class="biomed-ner-note">(.*)</div><div class="biomed-ner-legend">'), '<[^>]*>', '', 'g')) = body
     AND coalesce((SELECT bool_and(html_unescape(m[3]) = substr(body, m[1]::int + 1, m[2]::int - m[1]::int))
                   FROM regexp_matches(html, 'data-start="(\d+)" data-end="(\d+)"[^>]*>([^<]*)</mark>', 'g') m), true) $$;
