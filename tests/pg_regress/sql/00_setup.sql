-- Installs the extension and a helper that shows an error's SQLSTATE, message and hint.
CREATE EXTENSION biomed_ner;
CREATE FUNCTION expect_error(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; hint text;
BEGIN
  EXECUTE sql;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN st || ': ' || msg || coalesce(' | hint: ' || nullif(hint, ''), '');
END $$;
