-- Watched tables: watch with backfill, the queue drained by biomed_ner_queue_drain (the queue
-- worker does the same in the background; tests/robustness/queue.sh runs it), update of the
-- text, a delete, a failing row and its retry, pause and resume, a watch without backfill,
-- permissions, unwatch. A row is pending while its jsonb column is NULL and its text is not.
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
CREATE TABLE watched (id int PRIMARY KEY, body text, entities jsonb, note text);
INSERT INTO watched (id, body) VALUES (1, 'Fever and cough.'), (2, 'Aspirin 81 mg daily.'), (3, NULL);
-- Wrong uses.
SELECT expect_error($$SELECT biomed_ner_watch('watched', 'nope', 'entities')$$);
SELECT expect_error($$SELECT biomed_ner_watch('watched', 'entities', 'body')$$);
CREATE TABLE no_key (body text, entities jsonb);
SELECT expect_error($$SELECT biomed_ner_watch('no_key', 'body', 'entities')$$);
SELECT expect_error($$SELECT biomed_ner_unwatch('no_key')$$);
CREATE TABLE filled (id int PRIMARY KEY, body text, entities jsonb NOT NULL DEFAULT '[]');
SELECT expect_error($$SELECT biomed_ner_watch('filled', 'body', 'entities')$$);
ALTER TABLE filled ALTER COLUMN entities DROP NOT NULL;
SELECT expect_error($$SELECT biomed_ner_watch('filled', 'body', 'entities')$$);
DROP TABLE filled;
-- Watch, with backfill of the rows whose jsonb column is NULL.
SELECT biomed_ner_watch('watched', 'body', 'entities');
SELECT expect_error($$SELECT biomed_ner_watch('watched', 'body', 'entities')$$);
INSERT INTO watched (id, body) VALUES (4, 'Chest pain with fever.');
SELECT table_name, pending, done, failed, paused, oldest_pending_age > '0'::interval AS waiting FROM biomed_ner_queue_status;
SELECT indexdef FROM pg_indexes WHERE tablename = 'watched' AND indexname LIKE '%biomed_ner_pending';
-- Its last term folds away: the pending rows' query is served by it.
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM watched WHERE entities IS NULL AND body IS NOT NULL ORDER BY id LIMIT 64;
RESET enable_seqscan;
SELECT biomed_ner_queue_drain('watched') AS annotated;
SELECT table_name, pending, done, failed, oldest_pending_age FROM biomed_ner_queue_status;
SELECT id, entities IS NOT NULL AS annotated, same_entities(entities, biomed_ner(body)) AS current FROM watched ORDER BY id;
-- A new text is annotated again; writes of other columns are not.
UPDATE watched SET body = 'Severe headache and nausea.' WHERE id = 1;
UPDATE watched SET note = 'seen' WHERE id = 2;
UPDATE watched SET entities = '[]' WHERE id = 3;
SELECT pending FROM biomed_ner_queue_status;
SELECT biomed_ner_queue_drain('watched') AS annotated;
SELECT id, same_entities(entities, biomed_ner(body)) AS current, entities = '[]' AS kept FROM watched ORDER BY id;
-- A row changed twice before the queue runs gets the entities of its last text; a row deleted
-- before it runs is gone from the queue.
UPDATE watched SET body = 'Vomiting.' WHERE id = 2;
UPDATE watched SET body = 'Vomiting and diarrhoea.' WHERE id = 2;
UPDATE watched SET body = 'Rash.' WHERE id = 4;
DELETE FROM watched WHERE id = 4;
SELECT pending FROM biomed_ner_queue_status;
SELECT biomed_ner_queue_drain('watched') AS taken_off;
SELECT id, same_entities(entities, biomed_ner('Vomiting and diarrhoea.')) AS latest_text FROM watched WHERE id = 2;
-- A row that fails (over max_chars) is recorded and does not hold back the others.
SET biomed_ner.max_chars = 40;
INSERT INTO watched (id, body) VALUES (5, repeat('fever ', 10)), (6, 'Cough.');
SELECT biomed_ner_queue_drain('watched') AS taken_off;
RESET biomed_ner.max_chars;
SELECT table_name, key, reason, sqlstate, error FROM biomed_ner_queue_failures;
SELECT id, entities IS NOT NULL AS annotated FROM watched WHERE id IN (5, 6) ORDER BY id;
SELECT pending, failed, last_error FROM biomed_ner_queue_status;
-- A failed row stays held in the version that failed: later batches skip it, a retry or a new
-- write of the row releases it.
SELECT biomed_ner_queue_drain('watched') AS nothing_pending;
SELECT biomed_ner_queue_retry('watched') AS released;
SELECT pending, failed FROM biomed_ner_queue_status;
SELECT biomed_ner_queue_drain('watched') AS annotated_after_retry;
SELECT id, same_entities(entities, biomed_ner(body)) AS current FROM watched WHERE id = 5;
SET biomed_ner.max_chars = 40;
UPDATE watched SET body = repeat('cough ', 10) WHERE id = 6;
SELECT biomed_ner_queue_drain('watched') AS failed_again;
RESET biomed_ner.max_chars;
UPDATE watched SET body = 'Cough and fever.' WHERE id = 6;
SELECT pending, failed FROM biomed_ner_queue_status;
SELECT biomed_ner_queue_drain('watched') AS released_by_the_write;
SELECT count(*) AS failures FROM biomed_ner_queue_failures;
-- Setting the jsonb column to NULL asks for the row again; a row inserted with entities is
-- taken as annotated.
UPDATE watched SET entities = NULL WHERE id = 6;
INSERT INTO watched (id, body, entities) VALUES (9, 'Given by the application.', '[]');
SELECT pending FROM biomed_ner_queue_status;
SELECT biomed_ner_queue_drain('watched') AS annotated;
SELECT id, entities FROM watched WHERE id = 9;
-- Pause and resume.
SELECT biomed_ner_watch_pause('watched');
INSERT INTO watched (id, body) VALUES (7, 'Dyspnoea on exertion.');
SELECT biomed_ner_queue_drain('watched') AS while_paused;
SELECT paused, pending FROM biomed_ner_queue_status;
SELECT biomed_ner_watch_resume('watched');
SELECT biomed_ner_queue_drain('watched') AS after_resume;
-- A write that a trigger of the table skips leaves its row held as skipped, neither lost nor
-- coming first in every batch; a retry after the trigger allows it writes it.
CREATE FUNCTION hold_writes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RETURN CASE WHEN NEW.note = 'hold' THEN NULL ELSE NEW END; END $$;
CREATE TRIGGER hold_writes BEFORE UPDATE ON watched FOR EACH ROW EXECUTE FUNCTION hold_writes();
-- In the same batch, a row that fails keeps its own reason.
INSERT INTO watched (id, body, note) VALUES (20, 'Abdominal pain.', 'hold'), (21, repeat('nausea ', 10), NULL);
SET biomed_ner.max_chars = 40;
SELECT biomed_ner_queue_drain('watched') AS held;
RESET biomed_ner.max_chars;
SELECT pending, failed, (SELECT entities IS NULL FROM watched WHERE id = 20) AS not_written FROM biomed_ner_queue_status;
SELECT key, reason, sqlstate, error FROM biomed_ner_queue_failures ORDER BY key;
SELECT biomed_ner_queue_drain('watched') AS skipped_now;
DROP TRIGGER hold_writes ON watched;
SELECT biomed_ner_queue_retry('watched') AS released;
SELECT biomed_ner_queue_drain('watched') AS after_release;
SELECT pending, failed, (SELECT bool_and(same_entities(entities, biomed_ner(body))) FROM watched WHERE id IN (20, 21)) AS written
FROM biomed_ner_queue_status;
-- Without backfill: the rows NULL when the table is watched stay so until they are written again.
CREATE TABLE later (id int PRIMARY KEY, body text, entities jsonb);
INSERT INTO later (id, body) VALUES (1, 'Old note: fever.'), (2, 'Old note: cough.'), (5, 'Old note: rash.');
SELECT biomed_ner_watch('later', 'body', 'entities', backfill => false);
INSERT INTO later (id, body) VALUES (3, 'New note: rash.');
SELECT pending, failed FROM biomed_ner_queue_status WHERE table_name = 'later'::regclass;
SELECT biomed_ner_queue_drain('later') AS annotated;
UPDATE later SET body = 'Old note, rewritten: cough and fever.' WHERE id = 2;
SELECT biomed_ner_queue_drain('later') AS annotated;
SELECT id, entities IS NOT NULL AS annotated FROM later ORDER BY id;
-- The held entry of a row deleted since goes when the queue worker's walk through the held
-- entries (a slice each idle minute; here one entry a call) reaches it; the others stay.
DELETE FROM later WHERE id = 1;
SELECT key, reason FROM biomed_ner_held WHERE relid = 'later'::regclass ORDER BY key;
SELECT split_part(_biomed_ner_prune_held('later'::regclass::oid || ':', 1), ':', 2) AS reached;
SELECT split_part(_biomed_ner_prune_held('later'::regclass::oid || ':1', 1), ':', 2) AS reached;
SELECT _biomed_ner_prune_held('later'::regclass::oid || ':5', 1) IS NULL AS at_the_end;
SELECT key, reason FROM biomed_ner_held WHERE relid = 'later'::regclass ORDER BY key;
SELECT biomed_ner_unwatch('later');
-- A partitioned table: the index and the trigger reach every partition.
CREATE TABLE parted (id int PRIMARY KEY, body text, entities jsonb) PARTITION BY RANGE (id);
CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (100);
CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (100) TO (200);
INSERT INTO parted (id, body) VALUES (1, 'Fever.'), (150, 'Cough.');
SELECT biomed_ner_watch('parted', 'body', 'entities');
SELECT count(*) AS partial_indexes FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
WHERE c.relname LIKE 'parted%' AND i.indpred IS NOT NULL;
INSERT INTO parted (id, body) VALUES (2, 'Rash.');
SELECT biomed_ner_queue_drain('parted') AS annotated;
UPDATE parted SET body = 'Chest pain.' WHERE id = 150;
SELECT pending FROM biomed_ner_queue_status WHERE table_name = 'parted'::regclass;
SELECT biomed_ner_queue_drain('parted') AS annotated;
SELECT id, same_entities(entities, biomed_ner(body)) AS current FROM parted ORDER BY id;
SELECT biomed_ner_unwatch('parted');
SELECT count(*) AS partial_indexes_left FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
WHERE c.relname LIKE 'parted%' AND i.indpred IS NOT NULL;
DROP TABLE parted;
-- The queue worker's clock keeps a day of readings.
INSERT INTO biomed_ner_clock VALUES ('5', now() - interval '2 days'), ('6', now() - interval '1 hour');
SELECT _biomed_ner_clock_tick('7', now());
SELECT xid FROM biomed_ner_clock ORDER BY xid;
DELETE FROM biomed_ner_clock;
-- A table in another schema, with names that need quoting.
CREATE SCHEMA "odd schema";
CREATE TABLE "odd schema"."Notes ""x""" ("Key" text PRIMARY KEY, "the text" varchar(200), "the entities" jsonb);
INSERT INTO "odd schema"."Notes ""x""" VALUES ('a', 'Fever.', NULL);
SELECT biomed_ner_watch('"odd schema"."Notes ""x"""', 'the text', 'the entities');
SELECT indexname FROM pg_indexes WHERE schemaname = 'odd schema';
INSERT INTO "odd schema"."Notes ""x""" VALUES ('b', 'Cough.', NULL);
SELECT biomed_ner_queue_drain('"odd schema"."Notes ""x"""') AS annotated;
SELECT "Key", same_entities("the entities", biomed_ner("the text")) AS current FROM "odd schema"."Notes ""x""" ORDER BY 1;
SELECT biomed_ner_unwatch('"odd schema"."Notes ""x"""');
SELECT count(*) AS indexes_left FROM pg_indexes WHERE schemaname = 'odd schema';
DROP SCHEMA "odd schema" CASCADE;
-- Permissions: the queue is the extension's; a watch needs SELECT and TRIGGER on the table and
-- UPDATE on its jsonb column; only its creator, the table's owner and superusers manage it;
-- its writes stop when its creator may no longer make them.
CREATE ROLE queue_alice LOGIN;
CREATE ROLE queue_bob LOGIN;
CREATE TABLE alice_notes (id int PRIMARY KEY, body text, entities jsonb);
ALTER TABLE alice_notes OWNER TO queue_alice;
GRANT SELECT ON watched TO queue_bob;
SET SESSION AUTHORIZATION queue_bob;
SELECT expect_error($$SELECT biomed_ner_watch('alice_notes', 'body', 'entities')$$);
SELECT expect_error($$SELECT biomed_ner_unwatch('watched')$$);
SELECT expect_error($$SELECT biomed_ner_watch_pause('watched')$$);
SELECT expect_error($$SELECT biomed_ner_queue_drain('watched')$$);
SELECT expect_error($$INSERT INTO biomed_ner_held (relid, key, row_xmin, row_ctid, reason) VALUES ('alice_notes'::regclass, '1', '1', '(0,1)', 'failed')$$);
SELECT expect_error($$SELECT biomed_ner_queue_retry('watched')$$);
SELECT expect_error($$SELECT _biomed_ner_drain('watched'::regclass, 10)$$);
SELECT table_name FROM biomed_ner_queue_status;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION queue_alice;
SELECT biomed_ner_watch('alice_notes', 'body', 'entities');
INSERT INTO alice_notes (id, body) VALUES (1, 'Fever.');
SELECT biomed_ner_queue_drain('alice_notes') AS annotated;
SELECT owner FROM biomed_ner_queue_status;
RESET SESSION AUTHORIZATION;
-- The held rows of a table are visible to those who may read it, and to no one else.
INSERT INTO biomed_ner_held (relid, key, row_xmin, row_ctid, reason, error) VALUES ('alice_notes', '1', '1', '(0,1)', 'failed', 'a test');
SET SESSION AUTHORIZATION queue_bob;
SELECT count(*) AS bob_sees FROM biomed_ner_held WHERE relid = 'alice_notes'::regclass;
SELECT count(*) AS bob_sees FROM biomed_ner_queue_failures;
SET SESSION AUTHORIZATION queue_alice;
SELECT count(*) AS alice_sees FROM biomed_ner_held WHERE relid = 'alice_notes'::regclass;
SELECT table_name, key, error FROM biomed_ner_queue_failures;
RESET SESSION AUTHORIZATION;
DELETE FROM biomed_ner_held WHERE relid = 'alice_notes'::regclass;
-- The table's own triggers run as its owner, never with the queue's rights, nor the caller's.
CREATE TABLE alice_log (who name);
CREATE FUNCTION alice_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO alice_log VALUES (current_user); RETURN NEW; END $$;
ALTER TABLE alice_log OWNER TO queue_alice;
ALTER FUNCTION alice_audit() OWNER TO queue_alice;
CREATE TRIGGER audit BEFORE UPDATE ON alice_notes FOR EACH ROW EXECUTE FUNCTION alice_audit();
INSERT INTO alice_notes (id, body) VALUES (3, 'Chest pain.');
SELECT biomed_ner_queue_drain('alice_notes') AS annotated_by_superuser;
SELECT who FROM alice_log;
SELECT last_error FROM biomed_ner_queue_status WHERE table_name = 'alice_notes'::regclass;
-- So do the table's domain checks, when the batch reads its keys.
CREATE FUNCTION alice_key_ok(k int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN INSERT INTO alice_log VALUES (current_user); RETURN k > 0; END $$;
ALTER FUNCTION alice_key_ok(int) OWNER TO queue_alice;
CREATE DOMAIN alice_key AS int CHECK (alice_key_ok(VALUE));
ALTER DOMAIN alice_key OWNER TO queue_alice;
CREATE TABLE alice_keyed (id alice_key PRIMARY KEY, body text, entities jsonb);
ALTER TABLE alice_keyed OWNER TO queue_alice;
INSERT INTO alice_keyed (id, body) VALUES (1, 'Fever.'), (2, 'Cough.');
SET SESSION AUTHORIZATION queue_alice;
SELECT biomed_ner_watch('alice_keyed', 'body', 'entities');
RESET SESSION AUTHORIZATION;
INSERT INTO alice_keyed (id, body) VALUES (3, 'Rash.');
DELETE FROM alice_keyed WHERE id = 3;
DELETE FROM alice_log;
SELECT biomed_ner_queue_drain('alice_keyed') AS taken_off;
SELECT DISTINCT who FROM alice_log;
SELECT biomed_ner_unwatch('alice_keyed');
REVOKE UPDATE ON alice_notes FROM queue_alice;
INSERT INTO alice_notes (id, body) VALUES (2, 'Cough.');
SELECT biomed_ner_queue_drain('alice_notes') AS while_not_allowed;
SELECT pending, last_error FROM biomed_ner_queue_status WHERE table_name = 'alice_notes'::regclass;
SELECT id, entities IS NOT NULL AS annotated FROM alice_notes ORDER BY id;
-- Unwatch: trigger and index gone.
SELECT biomed_ner_unwatch('watched');
SELECT biomed_ner_unwatch('alice_notes');
INSERT INTO watched (id, body) VALUES (8, 'Fatigue.');
SELECT count(*) AS watches FROM biomed_ner_queue_status;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgname LIKE 'biomed_ner_watch%';
SELECT count(*) AS indexes FROM pg_indexes WHERE indexname LIKE '%biomed_ner_pending%';
SELECT count(*) AS held FROM biomed_ner_held;
DROP TABLE watched, no_key, alice_notes, alice_log, alice_keyed, later;
DROP FUNCTION alice_audit();
DROP DOMAIN alice_key;
DROP FUNCTION alice_key_ok(int);
DROP ROLE queue_alice, queue_bob;
