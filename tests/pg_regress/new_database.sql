-- In a database a test made itself: the extension, the helpers and the fixture model.
CREATE EXTENSION biomed_ner;
\i tests/pg_regress/helpers.sql
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
