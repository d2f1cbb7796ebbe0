-- Installs the extension and the helpers of the other tests.
CREATE EXTENSION biomed_ner;
\set ECHO none
\i tests/pg_regress/helpers.sql
\set ECHO all
