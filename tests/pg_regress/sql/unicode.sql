-- Offsets are characters (code points): substr(body, start + 1, end - start) = word.
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
CREATE TABLE odd(id int, body text);
INSERT INTO odd VALUES
  (1, 'Emoji 😷 fever 🤒 and cough.'),
  (2, 'Combining marks: café naïve résumé.'),
  (3, 'CJK 患者发热三天 and Arabic المريض يعاني من الحمى.'),
  (4, E'Zero\u200Bwidth spaces and NBSP\u00A0here.'),
  (5, 'The ﬁrst ﬂuid test: ﬁbrosis.'),
  (6, 'Full-width digits ０１２３ mg.'),
  (7, E'Tabs\tand\r\nCRLF\nbreaks.'),
  (8, '   leading and trailing   '),
  (9, '🫀🫁🧠'),
  (10, '...!?'),
  (11, 'Pneumonoultramicroscopicsilicovolcanoconiosis was suspected.');
SELECT o.id,
       count(e) AS entities,
       bool_and(substr(o.body, (e->>'start')::int + 1, (e->>'end')::int - (e->>'start')::int) = e->>'word') AS words_are_slices,
       bool_and(e->>'word' !~ '^\s') AS no_leading_space
FROM odd o LEFT JOIN LATERAL jsonb_array_elements(biomed_ner(o.body)) e ON true
GROUP BY o.id ORDER BY o.id;
-- The emoji text's entities: offsets count the emoji as one character.
SELECT e->>'word' AS word, (e->>'start')::int AS start, (e->>'end')::int AS "end"
FROM odd, jsonb_array_elements(biomed_ner(body)) e WHERE id = 1;
DROP TABLE odd;
