-- Watched tables: a light trigger records changed rows in a queue table; the queue worker (or
-- biomed_ner_queue_drain) fills their jsonb column in batches. See src/queue/mod.rs.
--
-- Who may do what: the functions below run as the extension's owner and check the *session*
-- user (a role can do no more through them than its login role could do itself): watching
-- needs SELECT on the table, UPDATE on the jsonb column and TRIGGER on the table; the worker
-- writes only while the role that created the watch still has SELECT on the table and UPDATE
-- on the jsonb column (checked at every batch); unwatch, pause and resume are for that role,
-- the table's owner and superusers. Nobody but the extension's functions writes the queue.

-- Tables and roles are regclass and regrole, so that pg_dump writes them by name and a restore
-- finds them again; the watches, the queue and the failures are dumped with the database.
CREATE TABLE biomed_ner_watches (
    relid regclass PRIMARY KEY,
    text_column name NOT NULL,
    jsonb_column name NOT NULL,
    key_column name NOT NULL,
    key_type text NOT NULL,
    owner regrole NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    backfill_pending boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    done bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    last_error text,
    last_error_at timestamptz
);
CREATE TABLE biomed_ner_queue (
    relid regclass NOT NULL,
    key text NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (relid, key)
);
CREATE INDEX biomed_ner_queue_age ON biomed_ner_queue (relid, enqueued_at);
CREATE TABLE biomed_ner_failures (
    relid regclass NOT NULL,
    key text NOT NULL,
    sqlstate text NOT NULL,
    error text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (relid, key)
);
-- Batches of the last ten minutes, for rows per second.
CREATE TABLE biomed_ner_batches (relid oid NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp(), rows int NOT NULL);
REVOKE ALL ON biomed_ner_watches, biomed_ner_queue, biomed_ner_failures, biomed_ner_batches FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('biomed_ner_watches', '');
SELECT pg_catalog.pg_extension_config_dump('biomed_ner_queue', '');
SELECT pg_catalog.pg_extension_config_dump('biomed_ner_failures', '');

-- The watch triggers run _biomed_ner_enqueue (src/queue/enqueue.rs): it records the row's key as
-- the extension's owner, so that writers of the table need no right on the queue.

-- Raises 42501 unless the session user may manage the watch of `tab`.
CREATE FUNCTION _biomed_ner_check_manager(tab oid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE w @extschema@.biomed_ner_watches;
BEGIN
    SELECT * INTO w FROM @extschema@.biomed_ner_watches WHERE relid = tab;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not watched', tab::regclass USING ERRCODE = '42704',
            HINT = 'SELECT * FROM biomed_ner_queue_status lists the watched tables.';
    END IF;
    IF NOT (pg_has_role(session_user, w.owner, 'MEMBER')
            OR pg_has_role(session_user, (SELECT relowner FROM pg_class WHERE oid = tab), 'MEMBER')) THEN
        RAISE EXCEPTION 'only the role that created the watch of %, the table''s owner and superusers may change it', tab::regclass
            USING ERRCODE = '42501';
    END IF;
END $$;

CREATE FUNCTION biomed_ner_watch(tab regclass, text_column name, jsonb_column name, backfill boolean DEFAULT true)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ttype regtype; jtype regtype; key_col name; key_type text; rls boolean; distributed boolean;
BEGIN
    SELECT atttypid INTO ttype FROM pg_attribute WHERE attrelid = tab AND attname = text_column AND attnum > 0 AND NOT attisdropped;
    SELECT atttypid INTO jtype FROM pg_attribute WHERE attrelid = tab AND attname = jsonb_column AND attnum > 0 AND NOT attisdropped;
    IF ttype IS NULL OR jtype IS NULL THEN
        RAISE EXCEPTION 'column "%" of table % does not exist', CASE WHEN ttype IS NULL THEN text_column ELSE jsonb_column END, tab
            USING ERRCODE = '42703', HINT = 'Pass the names of a text column and a jsonb column: biomed_ner_watch(''notes'', ''body'', ''entities'').';
    END IF;
    IF ttype NOT IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype) OR jtype <> 'jsonb'::regtype THEN
        RAISE EXCEPTION 'biomed_ner_watch reads a text (or varchar) column and writes a jsonb column; "%" is %, "%" is %',
            text_column, ttype, jsonb_column, jtype USING ERRCODE = '42804';
    END IF;
    SELECT a.attname, format_type(a.atttypid, a.atttypmod) INTO key_col, key_type
    FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = tab AND i.indisprimary AND i.indnkeyatts = 1;
    IF key_col IS NULL THEN
        RAISE EXCEPTION 'table % has no single-column primary key', tab USING ERRCODE = '22023',
            HINT = 'A watch finds rows again by their primary key: add one, e.g. ALTER TABLE notes ADD PRIMARY KEY (id).';
    END IF;
    SELECT relrowsecurity INTO rls FROM pg_class WHERE oid = tab;
    IF rls THEN
        RAISE EXCEPTION 'table % has row-level security, which the queue worker''s writes would not apply', tab
            USING ERRCODE = '0A000', HINT = 'Use the trigger biomed_ner_annotate on this table instead.';
    END IF;
    -- Citus: the watch trigger would run on the shards' nodes, whose queues nothing drains.
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)' INTO distributed USING tab;
        IF distributed THEN
            RAISE EXCEPTION 'table % is distributed by Citus, where watched tables are not supported', tab
                USING ERRCODE = '0A000',
                HINT = 'Annotate it with INSERT ... SELECT into a colocated table, or with the trigger biomed_ner_annotate (README: Scaling out with Citus).';
        END IF;
    END IF;
    IF NOT (has_table_privilege(session_user, tab, 'SELECT') AND has_table_privilege(session_user, tab, 'TRIGGER')
            AND has_column_privilege(session_user, tab, jsonb_column, 'UPDATE')) THEN
        RAISE EXCEPTION 'permission denied to watch table %', tab USING ERRCODE = '42501',
            HINT = 'Watching needs SELECT and TRIGGER on the table and UPDATE on its jsonb column.';
    END IF;
    IF EXISTS (SELECT 1 FROM @extschema@.biomed_ner_watches WHERE relid = tab) THEN
        RAISE EXCEPTION 'table % is already watched', tab USING ERRCODE = '42710',
            HINT = 'biomed_ner_unwatch it first to watch other columns.';
    END IF;
    INSERT INTO @extschema@.biomed_ner_watches (relid, text_column, jsonb_column, key_column, key_type, owner, backfill_pending)
    VALUES (tab, text_column, jsonb_column, key_col, key_type, (SELECT oid FROM pg_roles WHERE rolname = session_user), backfill);
    EXECUTE format('CREATE TRIGGER biomed_ner_watch_insert AFTER INSERT ON %s FOR EACH ROW
                    EXECUTE FUNCTION @extschema@._biomed_ner_enqueue(%L)', tab, key_col);
    EXECUTE format('CREATE TRIGGER biomed_ner_watch_update AFTER UPDATE OF %I ON %s FOR EACH ROW
                    WHEN (OLD.%I IS DISTINCT FROM NEW.%I) EXECUTE FUNCTION @extschema@._biomed_ner_enqueue(%L)',
                   text_column, tab, text_column, text_column, key_col);
END $$;

CREATE FUNCTION biomed_ner_unwatch(tab regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM @extschema@._biomed_ner_check_manager(tab);
    EXECUTE format('DROP TRIGGER IF EXISTS biomed_ner_watch_insert ON %s', tab);
    EXECUTE format('DROP TRIGGER IF EXISTS biomed_ner_watch_update ON %s', tab);
    DELETE FROM @extschema@.biomed_ner_watches WHERE relid = tab;
    DELETE FROM @extschema@.biomed_ner_queue WHERE relid = tab;
    DELETE FROM @extschema@.biomed_ner_failures WHERE relid = tab;
    DELETE FROM @extschema@.biomed_ner_batches WHERE relid = tab;
END $$;

CREATE FUNCTION _biomed_ner_set_paused(tab regclass, pause boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM @extschema@._biomed_ner_check_manager(tab);
    UPDATE @extschema@.biomed_ner_watches SET paused = pause WHERE relid = tab;
END $$;
CREATE FUNCTION biomed_ner_watch_pause(tab regclass) RETURNS void
LANGUAGE sql AS $$ SELECT @extschema@._biomed_ner_set_paused(tab, true) $$;
CREATE FUNCTION biomed_ner_watch_resume(tab regclass) RETURNS void
LANGUAGE sql AS $$ SELECT @extschema@._biomed_ner_set_paused(tab, false) $$;

-- Whether an error of annotating a row is that row's own (its text: too long, not convertible,
-- a tokenizer or internal failure on it), so the row is recorded as failed and leaves the queue;
-- any other error (no model, the service restarting, a bad setting) leaves the queue as it is.
CREATE FUNCTION _biomed_ner_row_error(sqlstate text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT (sqlstate LIKE '22%' AND sqlstate <> '22023') OR sqlstate LIKE '54%' OR sqlstate = 'XX000'
$$;

-- One batch of the queue of `tab`, in the caller's transaction: up to `batch` queued rows read,
-- annotated with their current text, written where the text is still the one annotated, and
-- taken off the queue. Nothing is locked while the model runs (the queue's inference may run
-- at a low priority, and a writer of the table must never wait for it): a row is locked only
-- by the UPDATE that writes it, which skips it if its text changed meanwhile; a queue entry
-- leaves only if it was not queued again meanwhile (its time is unchanged), so a row changed
-- during the batch is annotated again with its new text. Deleted rows leave the queue; a row
-- that fails alone is recorded in biomed_ner_failures and leaves the queue; an error that is
-- not a row's own leaves the queue as it was. Returns the rows taken off the queue.
-- Not for PUBLIC: the queue worker and biomed_ner_queue_drain call it.
CREATE FUNCTION _biomed_ner_drain(tab oid, batch int) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    w @extschema@.biomed_ner_watches;
    keys text[]; ats timestamptz[]; done_keys text[]; left_keys text[]; gone_keys text[]; one text[];
    k text; n_failed int := 0; st text; msg text;
    annotate text;
BEGIN
    SELECT * INTO w FROM @extschema@.biomed_ner_watches WHERE relid = tab FOR UPDATE;
    IF NOT FOUND OR w.paused THEN
        RETURN 0;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = tab) THEN
        -- The table was dropped: its watch goes too.
        DELETE FROM @extschema@.biomed_ner_watches WHERE relid = tab;
        DELETE FROM @extschema@.biomed_ner_queue WHERE relid = tab;
        DELETE FROM @extschema@.biomed_ner_failures WHERE relid = tab;
        RETURN 0;
    END IF;
    IF NOT (has_table_privilege(w.owner, tab, 'SELECT') AND has_column_privilege(w.owner, tab, w.jsonb_column, 'UPDATE')) THEN
        UPDATE @extschema@.biomed_ner_watches SET last_error = format('role %s may no longer read %s or write its column %s; the watch waits',
            w.owner::regrole, tab::regclass, w.jsonb_column), last_error_at = now() WHERE relid = tab;
        RETURN 0;
    END IF;
    IF w.backfill_pending THEN
        -- Every read of the watched table runs as the watch's creator (src/queue/as_owner.rs),
        -- so that no function of the table's (a domain's CHECK, a trigger) runs with this one's rights.
        keys := @extschema@._biomed_ner_run_as(w.owner,
            format('SELECT array_agg(%I::text) FROM %s WHERE %I IS NULL', w.key_column, tab::regclass, w.jsonb_column),
            ARRAY[]::text[]);
        INSERT INTO @extschema@.biomed_ner_queue (relid, key) SELECT tab, q.key FROM unnest(keys) AS q(key) ON CONFLICT DO NOTHING;
        UPDATE @extschema@.biomed_ner_watches SET backfill_pending = false WHERE relid = tab;
    END IF;
    SELECT array_agg(key ORDER BY enqueued_at), array_agg(enqueued_at ORDER BY enqueued_at) INTO keys, ats FROM (
        SELECT key, enqueued_at FROM @extschema@.biomed_ner_queue WHERE relid = tab ORDER BY enqueued_at LIMIT batch) q;
    IF keys IS NULL THEN
        RETURN 0;
    END IF;
    -- Read the rows, annotate their text in one batched call, write each result where the text
    -- is still the one annotated (the UPDATE re-checks that on the row's latest version): as the
    -- watch's creator (src/queue/as_owner.rs), so that the table's own triggers never run with
    -- this function's rights.
    annotate := format($f$
        WITH rows AS MATERIALIZED (
            SELECT %1$I AS k, %2$I::text AS body FROM %3$s WHERE %1$I = ANY($1::%4$s[])),
        batch AS (SELECT array_agg(k) AS ks, array_agg(body) AS bodies, @extschema@.biomed_ner(array_agg(body)) AS es FROM rows),
        results AS (SELECT unnest(ks) AS k, unnest(bodies) AS body, unnest(es) AS e FROM batch),
        written AS (UPDATE %3$s t SET %5$I = r.e FROM results r
                    WHERE t.%1$I = r.k AND t.%2$I::text IS NOT DISTINCT FROM r.body RETURNING t.%1$I::text AS k)
        SELECT array_agg(k) FROM written$f$, w.key_column, w.text_column, tab::regclass, w.key_type, w.jsonb_column);
    BEGIN
        done_keys := @extschema@._biomed_ner_run_as(w.owner, annotate, keys);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        IF NOT @extschema@._biomed_ner_row_error(st) THEN
            -- Not the rows' fault (the model cannot load, the inference service restarts, a
            -- setting is wrong): nothing leaves the queue; the next batch tries again.
            UPDATE @extschema@.biomed_ner_watches SET last_error = format('%s: %s', st, msg), last_error_at = now()
            WHERE relid = tab;
            RETURN 0;
        END IF;
        -- One row's failure (a note over max_chars, say) must not hold back the others: one at a time.
        done_keys := ARRAY[]::text[];
        FOREACH k IN ARRAY keys LOOP
            BEGIN
                one := @extschema@._biomed_ner_run_as(w.owner, annotate, ARRAY[k]);
                done_keys := done_keys || coalesce(one, ARRAY[]::text[]);
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
                UPDATE @extschema@.biomed_ner_watches SET last_error = format('%s: %s (row %s)', st, msg, k), last_error_at = now()
                WHERE relid = tab;
                EXIT WHEN NOT @extschema@._biomed_ner_row_error(st);
                INSERT INTO @extschema@.biomed_ner_failures (relid, key, sqlstate, error) VALUES (tab, k, st, msg)
                ON CONFLICT (relid, key) DO UPDATE SET sqlstate = excluded.sqlstate, error = excluded.error, failed_at = now();
                done_keys := done_keys || k;
                n_failed := n_failed + 1;
            END;
        END LOOP;
    END;
    done_keys := coalesce(done_keys, ARRAY[]::text[]);
    -- Keys neither written nor failed: rows deleted meanwhile leave the queue; a row whose text
    -- changed was queued again by the change; any other (a write a trigger of the table
    -- skipped, a change made with triggers disabled) goes to the back of the queue.
    SELECT array_agg(x) INTO left_keys FROM unnest(keys) x WHERE x <> ALL (done_keys);
    IF left_keys IS NOT NULL THEN
        gone_keys := @extschema@._biomed_ner_run_as(w.owner,
            format('SELECT array_agg(x) FROM unnest($1) x WHERE NOT EXISTS (SELECT 1 FROM %s WHERE %I = x::%s)',
                   tab::regclass, w.key_column, w.key_type),
            left_keys);
        done_keys := done_keys || coalesce(gone_keys, ARRAY[]::text[]);
        UPDATE @extschema@.biomed_ner_queue q SET enqueued_at = clock_timestamp() FROM unnest(keys, ats) AS x(key, at)
        WHERE q.relid = tab AND q.key = x.key AND q.enqueued_at = x.at AND x.key <> ALL (done_keys);
    END IF;
    -- Entries queued again meanwhile (a later time) stay.
    DELETE FROM @extschema@.biomed_ner_queue q USING unnest(keys, ats) AS x(key, at)
    WHERE q.relid = tab AND q.key = x.key AND q.enqueued_at = x.at AND x.key = ANY(done_keys);
    DELETE FROM @extschema@.biomed_ner_failures WHERE relid = tab AND key = ANY(done_keys)
        AND failed_at < now();  -- a row that failed before and now went through
    UPDATE @extschema@.biomed_ner_watches
    SET done = done + cardinality(done_keys) - n_failed, failed = failed + n_failed WHERE relid = tab;
    INSERT INTO @extschema@.biomed_ner_batches (relid, rows) VALUES (tab, cardinality(done_keys));
    DELETE FROM @extschema@.biomed_ner_batches WHERE at < now() - interval '10 minutes';
    RETURN cardinality(done_keys);
END $$;
REVOKE ALL ON FUNCTION _biomed_ner_drain(oid, int) FROM PUBLIC;
REVOKE ALL ON FUNCTION _biomed_ner_run_as(oid, text, text[]) FROM PUBLIC;

CREATE FUNCTION biomed_ner_queue_drain(tab regclass, max_rows bigint DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE n bigint := 0; got int;
BEGIN
    PERFORM @extschema@._biomed_ner_check_manager(tab);
    LOOP
        got := @extschema@._biomed_ner_drain(tab, least(coalesce(max_rows - n, 64), 64)::int);
        n := n + got;
        EXIT WHEN got = 0 OR (max_rows IS NOT NULL AND n >= max_rows);
    END LOOP;
    RETURN n;
END $$;

CREATE VIEW biomed_ner_queue_status AS
SELECT w.relid::regclass AS table_name, w.text_column, w.jsonb_column, w.owner::regrole AS owner, w.paused,
       w.backfill_pending,
       (SELECT count(*) FROM @extschema@.biomed_ner_queue q WHERE q.relid = w.relid) AS pending,
       w.done, w.failed,
       (SELECT now() - min(q.enqueued_at) FROM @extschema@.biomed_ner_queue q WHERE q.relid = w.relid) AS oldest_pending_age,
       (SELECT round(coalesce(sum(b.rows), 0) / 60.0, 2) FROM @extschema@.biomed_ner_batches b
        WHERE b.relid = w.relid AND b.at > now() - interval '1 minute') AS rows_per_second,
       w.last_error, w.last_error_at
FROM @extschema@.biomed_ner_watches w
WHERE has_table_privilege(w.relid, 'SELECT');
GRANT SELECT ON biomed_ner_queue_status TO PUBLIC;

-- The failures of the watched tables one may read.
CREATE VIEW biomed_ner_queue_failures AS
SELECT f.relid::regclass AS table_name, f.key, f.sqlstate, f.error, f.failed_at
FROM @extschema@.biomed_ner_failures f
WHERE has_table_privilege(f.relid, 'SELECT');
GRANT SELECT ON biomed_ner_queue_failures TO PUBLIC;
