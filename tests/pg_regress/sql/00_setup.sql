-- Installs the extension (unless scripts/regress --upgrade installed 0.1.0 and updated it) and
-- the helpers of the other tests.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS biomed_ner;
RESET client_min_messages;
SELECT extversion FROM pg_extension WHERE extname = 'biomed_ner';
\set ECHO none
\i tests/pg_regress/helpers.sql
\set ECHO all
