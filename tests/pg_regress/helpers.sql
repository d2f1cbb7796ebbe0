-- Helpers of the SQL tests, included by 00_setup.sql and by tests that make databases of
-- their own: expect_error shows an error's SQLSTATE, message and hint; same_entities compares
-- two results.
CREATE FUNCTION expect_error(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; hint text;
BEGIN
  EXECUTE sql;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN st || ': ' || msg || coalesce(' | hint: ' || nullif(hint, ''), '');
END $$;
-- Batched and one-at-a-time results agree in every entity's type, span and word; scores
-- may differ in the last float32 bits, since a batch changes the shapes of matrix products.
CREATE FUNCTION same_entities(a jsonb, b jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT (a IS NULL AND b IS NULL) OR (jsonb_array_length(a) = jsonb_array_length(b) AND coalesce((
    SELECT bool_and(x->>'entity_group' = y->>'entity_group' AND x->>'word' = y->>'word'
                    AND x->>'start' = y->>'start' AND x->>'end' = y->>'end'
                    AND abs((x->>'score')::float8 - (y->>'score')::float8) < 1e-5)
    FROM jsonb_array_elements(a) WITH ORDINALITY p(x, i)
    JOIN jsonb_array_elements(b) WITH ORDINALITY q(y, j) ON i = j), true))
$$;
