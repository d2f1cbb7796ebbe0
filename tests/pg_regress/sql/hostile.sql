-- Watched tables against a hostile table owner and hostile neighbours: every statement on a
-- watched table runs as its owner, whoever watched it or drains it; a watch's pending state
-- survives any sequence of statements in one transaction; one table's failure is that table's
-- last_error; unwatch removes only its own table's index and trigger. (The cases that need a
-- queue worker, a fresh session or the inference service are in tests/robustness/hostile.sh.)
\getenv fixture BIOMED_NER_FIXTURE
SET biomed_ner.model = :'fixture';
SELECT biomed_ner('warm up') IS NOT NULL AS loaded;
CREATE ROLE hostile_alice LOGIN;
CREATE ROLE hostile_bob LOGIN;
CREATE SCHEMA hostile AUTHORIZATION hostile_alice;
GRANT USAGE, CREATE ON SCHEMA hostile TO hostile_bob;
SET search_path = hostile, public;
-- 1. A superuser watches a table alice owns: the batch runs alice's trigger as alice, inside a
-- security-restricted operation, so her trigger cannot make her a superuser.
SET SESSION AUTHORIZATION hostile_alice;
CREATE TABLE m (id int PRIMARY KEY, body text, e jsonb);
CREATE TABLE m_log (who name, attempt text);
GRANT INSERT ON m_log TO PUBLIC;
CREATE FUNCTION m_escalate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        EXECUTE 'ALTER ROLE hostile_alice SUPERUSER';
        INSERT INTO hostile.m_log VALUES (current_user, 'became superuser');
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO hostile.m_log VALUES (current_user, SQLSTATE);
    END;
    RETURN NEW;
END $$;
CREATE TRIGGER escalate BEFORE UPDATE ON m FOR EACH ROW EXECUTE FUNCTION m_escalate();
RESET SESSION AUTHORIZATION;
SELECT biomed_ner_watch('hostile.m', 'body', 'e');
INSERT INTO hostile.m VALUES (1, 'Fever and cough.');
SELECT biomed_ner_queue_drain('hostile.m') AS annotated_by_superuser;
SET SESSION AUTHORIZATION hostile_alice;
INSERT INTO m VALUES (2, 'Chest pain.');
SELECT biomed_ner_queue_drain('m') AS annotated_by_alice;
RESET SESSION AUTHORIZATION;
SELECT who, attempt FROM hostile.m_log ORDER BY 1, 2;
SELECT rolsuper AS alice_is_superuser FROM pg_roles WHERE rolname = 'hostile_alice';
SELECT id, e IS NOT NULL AS annotated FROM hostile.m ORDER BY id;
-- The table's new owner is who the batches run as, at once.
CREATE ROLE hostile_carol;
GRANT USAGE, CREATE ON SCHEMA hostile TO hostile_carol;
ALTER TABLE hostile.m OWNER TO hostile_carol;
INSERT INTO hostile.m VALUES (3, 'Rash.');
SELECT biomed_ner_queue_drain('hostile.m') AS annotated;
SELECT who FROM hostile.m_log ORDER BY who DESC LIMIT 1;
SELECT biomed_ner_unwatch('hostile.m');
ALTER TABLE hostile.m OWNER TO hostile_alice;
-- Its search_path is the owner's own (ALTER ROLE ... SET), not the caller's: her trigger finds
-- her table by an unqualified name.
SET SESSION AUTHORIZATION hostile_alice;
CREATE TABLE s (id int PRIMARY KEY, body text, e jsonb);
CREATE TABLE s_seen (id int);
CREATE FUNCTION s_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO s_seen VALUES (NEW.id); RETURN NEW; END $$;
CREATE TRIGGER audit BEFORE UPDATE ON s FOR EACH ROW EXECUTE FUNCTION s_audit();
SELECT biomed_ner_watch('s', 'body', 'e');
RESET SESSION AUTHORIZATION;
ALTER ROLE hostile_alice SET search_path = hostile;
INSERT INTO hostile.s VALUES (1, 'Fever.');
SET search_path = public;
SELECT biomed_ner_queue_drain('hostile.s') AS annotated;
SELECT id FROM hostile.s_seen;
SELECT last_error FROM biomed_ner_queue_status WHERE table_name = 'hostile.s'::regclass;
ALTER ROLE hostile_alice RESET search_path;
SET search_path = hostile, public;
INSERT INTO s VALUES (2, 'Cough.');
SELECT biomed_ner_queue_drain('s') AS without_her_search_path;
SELECT left(last_error, 5) AS sqlstate FROM biomed_ner_queue_status WHERE table_name = 's'::regclass;
SELECT biomed_ner_unwatch('s');
-- 7. A row's pending state survives any sequence of statements in one transaction: a row
-- held (not backfilled, or failed) and written again in the same transaction is pending again.
CREATE TABLE hw (id int PRIMARY KEY, body text, e jsonb);
BEGIN;
INSERT INTO hw VALUES (1, 'placeholder');
SELECT biomed_ner_watch('hw', 'body', 'e', false);
UPDATE hw SET body = 'fever and cough' WHERE id = 1;
COMMIT;
SELECT pending FROM biomed_ner_queue_status WHERE table_name = 'hw'::regclass;
SELECT biomed_ner_queue_drain('hw') AS annotated;
BEGIN;
SET LOCAL biomed_ner.max_chars = 20;
INSERT INTO hw VALUES (2, 'a note much longer than twenty characters');
SELECT biomed_ner_queue_drain('hw') AS held_as_failed;
SELECT key, reason FROM biomed_ner_queue_failures WHERE table_name = 'hw'::regclass;
UPDATE hw SET body = 'Cough.' WHERE id = 2;
COMMIT;
SELECT pending, failed FROM biomed_ner_queue_status WHERE table_name = 'hw'::regclass;
SELECT biomed_ner_queue_drain('hw') AS annotated;
SELECT id, same_entities(e, biomed_ner(body)) AS current FROM hw ORDER BY id;
SELECT biomed_ner_unwatch('hw');
-- 8. Keys whose text depends on the session's settings are refused; integers, numeric, text,
-- uuid and domains over them are not.
CREATE TABLE fk (k float8 PRIMARY KEY, body text, e jsonb);
SELECT expect_error($$SELECT biomed_ner_watch('fk', 'body', 'e')$$);
CREATE TABLE tk (k timestamptz PRIMARY KEY, body text, e jsonb);
SELECT expect_error($$SELECT biomed_ner_watch('tk', 'body', 'e')$$);
CREATE DOMAIN fdom AS float8;
CREATE TABLE dk (k fdom PRIMARY KEY, body text, e jsonb);
SELECT expect_error($$SELECT biomed_ner_watch('dk', 'body', 'e')$$);
CREATE TABLE nk (k numeric PRIMARY KEY, body text, e jsonb);
INSERT INTO nk VALUES (2.3000000000000003, 'Fever.'), (1.10, 'Cough.');
SELECT biomed_ner_watch('nk', 'body', 'e');
SELECT biomed_ner_queue_drain('nk', 10) AS annotated;
SELECT k, e IS NOT NULL AS annotated FROM nk ORDER BY k;
SELECT biomed_ner_unwatch('nk');
-- 4. Unwatch removes its own table's pending index and trigger, found by what they are, never
-- by a name another table may have taken since.
SET SESSION AUTHORIZATION hostile_alice;
CREATE TABLE rec (id int PRIMARY KEY, body text, e jsonb);
SELECT biomed_ner_watch('rec', 'body', 'e');
DROP INDEX rec_biomed_ner_pending;
ALTER TABLE rec RENAME TO rec_old;
SET SESSION AUTHORIZATION hostile_bob;
CREATE TABLE rec (id int PRIMARY KEY, body text, e jsonb);
SELECT biomed_ner_watch('rec', 'body', 'e');
SET SESSION AUTHORIZATION hostile_alice;
SELECT biomed_ner_unwatch('rec_old');
RESET SESSION AUTHORIZATION;
SELECT c.relname AS index_left, t.relname AS on_table FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid WHERE c.relname LIKE 'rec%pending%';
SELECT tgrelid::regclass AS trigger_left_on FROM pg_trigger WHERE tgname = 'biomed_ner_watch_update';
SELECT biomed_ner_unwatch('rec');
-- 5. One table's failure is its own last_error, never an error of the queue: row-level
-- security forced since the watch (the queue then reads nothing of the table, so its policy, one
-- that raises here, never runs), a renamed jsonb column. The status view still reads. A
-- temporary table is refused: another session cannot see it.
SET SESSION AUTHORIZATION hostile_alice;
CREATE TABLE victim (id int PRIMARY KEY, body text, e jsonb);
CREATE TABLE trap (id int PRIMARY KEY, body text, e jsonb);
SELECT biomed_ner_watch('victim', 'body', 'e');
SELECT biomed_ner_watch('trap', 'body', 'e');
CREATE FUNCTION boom() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$;
ALTER TABLE trap ENABLE ROW LEVEL SECURITY;
ALTER TABLE trap FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON trap USING (boom());
INSERT INTO victim VALUES (1, 'Fever.');
RESET SESSION AUTHORIZATION;
INSERT INTO hostile.trap VALUES (1, 'Cough.');
SET SESSION AUTHORIZATION hostile_alice;
SELECT biomed_ner_queue_drain('trap') AS trap_drained;
SELECT biomed_ner_queue_drain('victim') AS victim_drained;
SELECT table_name, pending, last_error FROM biomed_ner_queue_status WHERE table_name::text IN ('victim', 'trap') ORDER BY 1;
ALTER TABLE trap DISABLE ROW LEVEL SECURITY;
ALTER TABLE trap RENAME COLUMN e TO e2;
SELECT biomed_ner_queue_drain('trap') AS renamed_drained;
SELECT table_name, last_error FROM biomed_ner_queue_status WHERE table_name = 'trap'::regclass;
CREATE TEMP TABLE tmp (id int PRIMARY KEY, body text, e jsonb);
SELECT expect_error($$SELECT biomed_ner_watch('tmp', 'body', 'e')$$);
DROP TABLE tmp;
SELECT biomed_ner_unwatch('victim');
SELECT biomed_ner_unwatch('trap');
RESET SESSION AUTHORIZATION;
-- 3. A model's load error in the status view: its words for roles that may not read server
-- files keep the file content out.
SET SESSION AUTHORIZATION hostile_alice;
SELECT biomed_ner_watch('victim', 'body', 'e');
GRANT SELECT ON victim TO hostile_bob;
RESET SESSION AUTHORIZATION;
UPDATE biomed_ner_watches SET last_error = 'F0000: unsupported model: model_type "the secret"' WHERE relid = 'hostile.victim'::regclass;
SELECT last_error AS superuser_sees FROM biomed_ner_queue_status WHERE table_name = 'hostile.victim'::regclass;
SET SESSION AUTHORIZATION hostile_bob;
SELECT last_error AS bob_sees FROM biomed_ner_queue_status WHERE table_name = 'hostile.victim'::regclass;
RESET SESSION AUTHORIZATION;
-- A dropped creator role leaves the watch to the table's owner.
GRANT SELECT, TRIGGER, UPDATE ON hostile.victim TO hostile_carol;
SET SESSION AUTHORIZATION hostile_alice;
SELECT biomed_ner_unwatch('victim');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION hostile_carol;
SELECT biomed_ner_watch('hostile.victim', 'body', 'e');
RESET SESSION AUTHORIZATION;
REVOKE ALL ON hostile.victim FROM hostile_carol;
REVOKE ALL ON SCHEMA hostile FROM hostile_carol;
DROP ROLE hostile_carol;
INSERT INTO hostile.victim VALUES (2, 'Cough.');
SET SESSION AUTHORIZATION hostile_alice;
SELECT biomed_ner_queue_drain('victim') AS annotated;
SELECT biomed_ner_unwatch('victim');
RESET SESSION AUTHORIZATION;
-- 10. A table name of 63 bytes in multibyte characters: the index name is cut by characters.
CREATE TABLE "éééééééééééééééééééééééééééééééx" (id int PRIMARY KEY, body text, e jsonb);
SELECT biomed_ner_watch('"éééééééééééééééééééééééééééééééx"', 'body', 'e');
SELECT c.relname, octet_length(c.relname) AS bytes FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = '"éééééééééééééééééééééééééééééééx"'::regclass AND NOT i.indisprimary;
SELECT biomed_ner_unwatch('"éééééééééééééééééééééééééééééééx"');
-- 11. The watch's trigger function with a hand-made argument: a dropped column's name is not a
-- jsonb column of the table.
CREATE TABLE dropped (id int PRIMARY KEY, body text, gone jsonb, e jsonb);
ALTER TABLE dropped DROP COLUMN gone;
SELECT format('CREATE TRIGGER t BEFORE UPDATE ON dropped FOR EACH ROW EXECUTE FUNCTION _biomed_ner_invalidate(%L)', attname)
FROM pg_attribute WHERE attrelid = 'dropped'::regclass AND attisdropped \gexec
INSERT INTO dropped VALUES (1, 'Fever.', '[]');
SELECT expect_error($$UPDATE dropped SET body = 'Cough.'$$);
CREATE TRIGGER t2 BEFORE INSERT ON dropped FOR EACH ROW EXECUTE FUNCTION _biomed_ner_invalidate('e');
SELECT expect_error($$INSERT INTO dropped VALUES (2, 'Rash.', '[]')$$);
-- The SQL a batch runs as the table's owner names every function with its schema: a function of
-- alice's in a schema on the owner's search_path (array_agg here) never runs in bob's batches.
SET SESSION AUTHORIZATION hostile_alice;
CREATE TABLE trojan_log (who name);
GRANT INSERT ON trojan_log TO PUBLIC;
CREATE FUNCTION trojan_step(text[], text) RETURNS text[] LANGUAGE plpgsql AS $$
BEGIN INSERT INTO hostile.trojan_log VALUES (current_user); RETURN $1 || $2; END $$;
CREATE AGGREGATE array_agg(text) (sfunc = trojan_step, stype = text[]);
RESET SESSION AUTHORIZATION;
ALTER ROLE hostile_bob SET search_path = hostile, public;
SET SESSION AUTHORIZATION hostile_bob;
CREATE TABLE bob_notes (id int PRIMARY KEY, body text, e jsonb);
SELECT biomed_ner_watch('bob_notes', 'body', 'e');
INSERT INTO bob_notes VALUES (1, 'Fever.'), (2, 'Cough.');
RESET SESSION AUTHORIZATION;
SELECT biomed_ner_queue_drain('hostile.bob_notes') AS annotated;
SELECT count(*) AS trojan_calls FROM hostile.trojan_log;
SELECT count(*) FILTER (WHERE e IS NOT NULL) AS annotated_rows FROM hostile.bob_notes;
ALTER ROLE hostile_bob RESET search_path;
-- 3. Who manages a watch is the role that called: a batch (a security-restricted operation)
-- refuses it, and a superuser's session running alice's function does not lend her its rights.
CREATE TABLE hostile.secret (id int PRIMARY KEY, body text, e jsonb);
ALTER TABLE hostile.secret OWNER TO hostile_bob;
SET SESSION AUTHORIZATION hostile_alice;
CREATE TABLE mgr (id int PRIMARY KEY, body text, e jsonb);
SELECT biomed_ner_watch('mgr', 'body', 'e');
CREATE FUNCTION mgr_unwatch_bob() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM biomed_ner_unwatch('hostile.bob_notes'); RETURN NEW; END $$;
CREATE TRIGGER t BEFORE UPDATE ON mgr FOR EACH ROW EXECUTE FUNCTION mgr_unwatch_bob();
CREATE FUNCTION alice_unwatch_bob() RETURNS void LANGUAGE sql SECURITY DEFINER AS $$ SELECT biomed_ner_unwatch('hostile.bob_notes') $$;
CREATE FUNCTION alice_watch_secret() RETURNS void LANGUAGE sql SECURITY DEFINER AS $$ SELECT biomed_ner_watch('hostile.secret', 'body', 'e') $$;
INSERT INTO mgr VALUES (1, 'Rash.');
RESET SESSION AUTHORIZATION;
SELECT biomed_ner_queue_drain('hostile.mgr') AS drained;
SELECT left(last_error, 90) AS mgr_last_error FROM biomed_ner_queue_status WHERE table_name = 'hostile.mgr'::regclass;
SELECT expect_error($$SELECT hostile.alice_unwatch_bob()$$);
SELECT expect_error($$SELECT hostile.alice_watch_secret()$$);
SELECT count(*) AS bob_still_watched FROM biomed_ner_watches WHERE relid = 'hostile.bob_notes'::regclass;
SELECT biomed_ner_unwatch('hostile.mgr');
SELECT biomed_ner_unwatch('hostile.bob_notes');
-- 7. The status and failures views are security barriers: a role's leaky function sees only the
-- rows of tables it may read.
SET SESSION AUTHORIZATION hostile_bob;
SELECT biomed_ner_watch('secret', 'body', 'e');
RESET SESSION AUTHORIZATION;
INSERT INTO biomed_ner_held (relid, key, row_xmin, row_ctid, reason, error)
VALUES ('hostile.secret', 'MRN-0042', '1', '(0,1)', 'failed', 'note of patient MRN-0042');
SELECT relname, reloptions FROM pg_class WHERE relname IN ('biomed_ner_queue_status', 'biomed_ner_queue_failures') ORDER BY 1;
SET SESSION AUTHORIZATION hostile_alice;
CREATE FUNCTION leak(t text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN RAISE NOTICE 'leaked: %', t; RETURN true; END $$;
SELECT count(*) AS alice_sees FROM biomed_ner_queue_failures WHERE leak(key) AND leak(error);
SELECT count(*) AS alice_sees FROM biomed_ner_queue_status WHERE leak(table_name::text);
RESET SESSION AUTHORIZATION;
SELECT biomed_ner_unwatch('hostile.secret');
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA hostile CASCADE;
RESET client_min_messages;
DROP ROLE hostile_alice, hostile_bob;
