-- biomed_ner 0.1.0 -> 0.2.0 (ALTER EXTENSION biomed_ner UPDATE).
-- 0.2.0 adds the shared inference service (biomed_ner_service()), watched tables (the queue
-- tables, the watch functions and views, the watch trigger's function), clinical assertion
-- (biomed_ner_assert(), the assertion column of biomed_ner_entities()), highlighted notes as HTML
-- (biomed_ner_html()) and the progress of long runs (the view biomed_ner_progress). The other functions of
-- 0.1.0 keep their SQL definitions; their library is the new one. Settings are not SQL objects: the new
-- ones (biomed_ner.execution, workers, batch_wait_ms, queue_*, model_path, max_threads, ...)
-- exist as soon as the 0.2.0 library is loaded.
\echo Use "ALTER EXTENSION biomed_ner UPDATE TO '0.2.0'" to load this file. \quit

-- biomed_ner_entities gains the column assertion (biomed_ner.assertion). A function's result
-- columns cannot change in place: views and functions built on it must be dropped before the
-- update and made again after it (the update stops with an error naming them otherwise).
DROP FUNCTION biomed_ner_entities(text);
-- src/api.rs
-- biomed_ner::api::biomed_ner_entities
CREATE  FUNCTION "biomed_ner_entities"(
	"note" text /* Note */
) RETURNS TABLE (
	"entity_group" text,  /* DbText */
	"word" text,  /* DbText */
	"start_pos" INT,  /* i32 */
	"end_pos" INT,  /* i32 */
	"score" real,  /* f32 */
	"assertion" text  /* Option < DbText > */
)
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'biomed_ner_entities_wrapper';

-- src/queue/as_owner.rs:23
-- biomed_ner::queue::as_owner::_biomed_ner_run_as
CREATE  FUNCTION "_biomed_ner_run_as"(
	"role" oid, /* pg_sys :: Oid */
	"search_path" TEXT, /* & str */
	"query" TEXT, /* & str */
	"keys" TEXT[], /* Vec < String > */
	"writes" bool DEFAULT false /* bool */
) RETURNS TEXT[] /* :: std :: option :: Option < Vec < Option < String > > > */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_biomed_ner_run_as_wrapper';

-- src/queue/manage.rs
-- biomed_ner::queue::manage::_biomed_ner_caller
CREATE  FUNCTION "_biomed_ner_caller"() RETURNS oid /* pg_sys :: Oid */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_biomed_ner_caller_wrapper';

-- src/queue/manage.rs
-- biomed_ner::queue::manage::_biomed_ner_manage
CREATE  FUNCTION "_biomed_ner_manage"(
	"action" TEXT, /* & str */
	"tab" oid, /* pg_sys :: Oid */
	"text_column" TEXT DEFAULT NULL, /* Option < & str > */
	"jsonb_column" TEXT DEFAULT NULL, /* Option < & str > */
	"flag" bool DEFAULT NULL, /* Option < bool > */
	"n" bigint DEFAULT NULL /* Option < i64 > */
) RETURNS bigint /* Option < i64 > */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_biomed_ner_manage_wrapper';

-- src/assertion.rs
-- biomed_ner::assertion::biomed_ner_assert
CREATE  FUNCTION "biomed_ner_assert"(
	"note" text, /* Note */
	"entities" jsonb /* JsonbArg */
) RETURNS jsonb /* DbJsonbText */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'biomed_ner_assert_wrapper';

-- src/html.rs
-- biomed_ner::html::biomed_ner_html
CREATE  FUNCTION "biomed_ner_html"(
	"note" text /* Note */
) RETURNS text /* DbText */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'biomed_ner_html_wrapper';

-- src/html.rs
-- biomed_ner::html::biomed_ner_html_given
CREATE  FUNCTION "biomed_ner_html"(
	"note" text, /* Note */
	"entities" jsonb /* JsonbArg */
) RETURNS text /* DbText */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'biomed_ner_html_given_wrapper';

-- src/progress.rs
-- biomed_ner::progress::_biomed_ner_progress
CREATE  FUNCTION "_biomed_ner_progress"() RETURNS TABLE (
	"pid" INT,  /* i32 */
	"datid" oid,  /* pgrx_pg_sys::submodules::oids::Oid */
	"userid" oid,  /* pgrx_pg_sys::submodules::oids::Oid */
	"command" TEXT,  /* biomed_ner::encoding::DbText */
	"relid" oid,  /* core::option::Option<pgrx_pg_sys::submodules::oids::Oid> */
	"rows_done" bigint,  /* core::option::Option<i64> */
	"rows_total" bigint,  /* core::option::Option<i64> */
	"total_is_estimate" bool,  /* core::option::Option<bool> */
	"started" timestamp with time zone  /* core::option::Option<pgrx::datum::time_stamp_with_timezone::TimestampWithTimeZone> */
)
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_biomed_ner_progress_wrapper';

-- Every running biomed_ner_bulk, queue batch and biomed_ner_queue_drain (src/progress.rs).
CREATE VIEW biomed_ner_progress AS
SELECT p.pid, d.datname, r.rolname AS usename, p.command, p.relid::pg_catalog.regclass AS relation,
       p.rows_done, p.rows_total, p.total_is_estimate, p.started,
       pg_catalog.round((p.rows_done / NULLIF(extract(epoch FROM pg_catalog.clock_timestamp() - p.started), 0))::numeric, 1)
           AS notes_per_second,
       CASE WHEN p.rows_done > 0 AND p.rows_total > p.rows_done
            THEN (pg_catalog.clock_timestamp() - p.started) * ((p.rows_total - p.rows_done)::float8 / p.rows_done) END AS time_left,
       CASE WHEN p.rows_done > 0 AND p.rows_total > p.rows_done
            THEN pg_catalog.clock_timestamp() + (pg_catalog.clock_timestamp() - p.started) * ((p.rows_total - p.rows_done)::float8 / p.rows_done) END AS eta
FROM @extschema@._biomed_ner_progress() p
LEFT JOIN pg_catalog.pg_database d ON d.oid = p.datid
LEFT JOIN pg_catalog.pg_roles r ON r.oid = p.userid;
GRANT SELECT ON biomed_ner_progress TO PUBLIC;

-- src/api.rs:216
-- biomed_ner::api::biomed_ner_service
CREATE  FUNCTION "biomed_ner_service"() RETURNS jsonb /* DbJsonb */
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'biomed_ner_service_wrapper';

-- src/queue/invalidate.rs:26
-- biomed_ner::queue::invalidate::_biomed_ner_invalidate
CREATE FUNCTION "_biomed_ner_invalidate"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', '_biomed_ner_invalidate_wrapper';

-- Watched tables (src/queue/queue.sql of 0.2.0).
-- Watched tables: a row is pending while its jsonb column is NULL (and its text is not); the
-- queue worker (or biomed_ner_queue_drain) fills the jsonb column in batches. See
-- src/queue/mod.rs for why the queue is the table itself.
--
-- Who may do what, and with whose rights (README: Watched tables, Rights):
-- - As the caller (the role that called the public function, read before anything switches
--   user: src/queue/manage.rs, _biomed_ner_caller()): watching needs SELECT on the table, UPDATE
--   on the jsonb column and TRIGGER on the table; unwatch, pause, resume, retry and drain are for
--   the role that created the watch, the table's owner and superusers.
-- - As the table's owner: every statement that reads or writes a watched table (the batch's
--   reads, annotation and write, the status counts, the pruning of held rows), whoever created
--   the watch and whoever asked for the batch (src/queue/as_owner.rs): a security-restricted
--   operation with the owner's own search_path, as VACUUM and ANALYZE act. So a table's triggers,
--   defaults, domain checks and key type run with its owner's rights, never the extension's
--   and never those of a superuser who watched it; a watch records no rights of its creator.
-- - As the extension's owner: these functions' own reads and writes of the queue's tables, the
--   pending index and the watch trigger. Nobody but the extension's functions writes these
--   tables.

-- Tables and roles are regclass and regrole, so that pg_dump writes them by name and a restore
-- finds them again; the watches and the held rows are dumped with the database. The pending
-- index is kept by name (in the table's schema): a restore creates indexes after the data.
CREATE TABLE biomed_ner_watches (
    relid regclass PRIMARY KEY,
    text_column name NOT NULL,
    jsonb_column name NOT NULL,
    key_column name NOT NULL,
    key_type text NOT NULL,
    pending_index name NOT NULL,
    -- The role that created the watch: it may manage it; batches never run with its rights.
    owner regrole NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    done bigint NOT NULL DEFAULT 0,
    last_error text,
    last_error_at timestamptz
);
-- Rows held back in one version: a row whose annotation failed ('failed': too long, say), one
-- whose write a trigger of the table skipped ('skipped'), one that was NULL when the table was
-- watched without backfill ('not backfilled'). A version is its xmin and its ctid: any later
-- write of the row makes a new version (a new ctid, and a new xmin unless it is the same
-- transaction's), which is pending again; biomed_ner_queue_retry releases the failed and skipped.
CREATE TABLE biomed_ner_held (
    relid regclass NOT NULL,
    key text NOT NULL,
    row_xmin xid NOT NULL,
    row_ctid tid NOT NULL,
    reason text NOT NULL CHECK (reason IN ('failed', 'skipped', 'not backfilled')),
    sqlstate text,
    error text,
    held_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (relid, key)
);
-- The queue worker's clock: at `at`, the next transaction id of the cluster was `xid`; so a row
-- version whose xmin is at least `xid` was written after `at` (biomed_ner_queue_status's
-- oldest_pending_age). Kept for a day.
CREATE TABLE biomed_ner_clock (xid xid8 PRIMARY KEY, at timestamptz NOT NULL);
-- Batches of the last ten minutes, for rows per second.
CREATE TABLE biomed_ner_batches (relid oid NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp(), rows int NOT NULL);
REVOKE ALL ON biomed_ner_watches, biomed_ner_held, biomed_ner_clock, biomed_ner_batches FROM PUBLIC;
-- The batch's reads of a watched table run as the watch's creator and skip its held rows: it
-- may read the held rows of the tables it may read.
ALTER TABLE biomed_ner_held ENABLE ROW LEVEL SECURITY;
CREATE POLICY readers ON biomed_ner_held FOR SELECT USING (has_table_privilege(relid, 'SELECT'));
GRANT SELECT ON biomed_ner_held TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('biomed_ner_watches', '');
SELECT pg_catalog.pg_extension_config_dump('biomed_ner_held', '');

-- The watch's trigger runs _biomed_ner_invalidate (src/queue/invalidate.rs): an UPDATE that
-- changes the text sets the jsonb column to NULL in the same row version.

-- Whether the owner of watched table `tab` forced row-level security on it since it was watched
-- (biomed_ner_watch refuses a table with row-level security): the queue then reads and writes
-- nothing of it, so that no policy of the owner's runs in a batch or in the status view's count.
-- The table is locked first (ACCESS SHARE, as any read of it; with `wait` false, a table that
-- cannot be locked at once counts as forced), so that the answer holds for the transaction.
CREATE FUNCTION _biomed_ner_forced_rls(tab oid, wait boolean) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = tab) THEN
        RETURN true;
    END IF;
    EXECUTE format('LOCK TABLE %s IN ACCESS SHARE MODE%s', tab::regclass, CASE WHEN wait THEN '' ELSE ' NOWAIT' END);
    RETURN (SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = tab);
EXCEPTION WHEN lock_not_available OR undefined_table THEN
    RETURN true;
END $$;

-- The role whose rights every read and write of a watched table runs with: its owner, now.
CREATE FUNCTION _biomed_ner_table_owner(tab oid) RETURNS oid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT relowner FROM pg_class WHERE oid = tab
$$;

-- The search_path `role` gets in this database's sessions: ALTER ROLE ... IN DATABASE, ALTER
-- ROLE, ALTER DATABASE, in that order, else PostgreSQL's default. The batches of a watched table
-- run with its owner's (src/queue/as_owner.rs), never the caller's.
CREATE FUNCTION _biomed_ner_role_search_path(role oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((
        SELECT substr(c, length('search_path=') + 1)
        FROM pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) c
        WHERE c LIKE 'search_path=%'
          AND (s.setrole, s.setdatabase) IN ((role, (SELECT oid FROM pg_database WHERE datname = current_database())),
                                             (role, 0), (0, (SELECT oid FROM pg_database WHERE datname = current_database())))
        ORDER BY s.setrole = 0, s.setdatabase = 0 LIMIT 1),
        (SELECT boot_val FROM pg_settings WHERE name = 'search_path'))
$$;

-- Raises 42501 unless the caller (src/queue/manage.rs) may manage the watch of `tab`.
CREATE FUNCTION _biomed_ner_check_manager(tab oid) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE w @extschema@.biomed_ner_watches;
BEGIN
    SELECT * INTO w FROM @extschema@.biomed_ner_watches WHERE relid = tab;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not watched', tab::regclass USING ERRCODE = '42704',
            HINT = 'SELECT * FROM biomed_ner_queue_status lists the watched tables.';
    END IF;
    -- (A dropped creator role leaves the watch to the table's owner.)
    IF NOT ((EXISTS (SELECT 1 FROM pg_roles WHERE oid = w.owner) AND pg_has_role(@extschema@._biomed_ner_caller(), w.owner, 'MEMBER'))
            OR pg_has_role(@extschema@._biomed_ner_caller(), @extschema@._biomed_ner_table_owner(tab), 'MEMBER')) THEN
        RAISE EXCEPTION 'only the role that created the watch of %, the table''s owner and superusers may change it', tab::regclass
            USING ERRCODE = '42501';
    END IF;
END $$;

-- The pending rows of a watch's table, as `FROM ... WHERE ...` over alias t: the jsonb column
-- NULL and the text not (the pending index's predicate, so that the index serves), and not held
-- in that version. For the queries run as the watch's creator (src/queue/as_owner.rs).
CREATE FUNCTION _biomed_ner_pending_rows(w @extschema@.biomed_ner_watches) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format($f$FROM %2$s t WHERE t.%3$I IS NULL AND t.%4$I IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM @extschema@.biomed_ner_held h
                        WHERE h.relid OPERATOR(pg_catalog.=) %5$s::oid::regclass AND h.key OPERATOR(pg_catalog.=) t.%1$I::text
                          AND h.row_xmin OPERATOR(pg_catalog.=) t.xmin AND h.row_ctid OPERATOR(pg_catalog.=) t.ctid)$f$,
        w.key_column, w.relid, w.jsonb_column, w.text_column, w.relid::oid)
$$;

-- The last term of every pending index's predicate. PostgreSQL folds it to true when it reads
-- the predicate (so inserts and the queue's queries see only the two NULL tests), but the index
-- depends on it: DROP EXTENSION biomed_ner refuses while a table is watched, and with CASCADE
-- drops the pending indexes with the watch triggers; the predicate is dumped with the index, so
-- this holds after a restore too.
CREATE FUNCTION _biomed_ner_watched() RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT true $$;

-- A row version as the batch's queries return it: 'xmin:ctid:key' of the row t (the key last,
-- since it may hold ':'), and such versions taken apart.
CREATE FUNCTION _biomed_ner_version(key_column name) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format($f$t.xmin::text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) t.ctid::text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) t.%I::text$f$, key_column)
$$;
CREATE FUNCTION _biomed_ner_versions(versions text[]) RETURNS TABLE (v text, key text, row_xmin xid, row_ctid tid)
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT v, substr(v, length(split_part(v, ':', 1)) + length(split_part(v, ':', 2)) + 3),
           split_part(v, ':', 1)::xid, split_part(v, ':', 2)::tid
    FROM unnest(versions) v
$$;

-- The management functions: each public one asks _biomed_ner_manage (src/queue/manage.rs) to run
-- its _impl as the extension's owner on behalf of the caller, whom _biomed_ner_caller() names.
CREATE FUNCTION biomed_ner_watch(tab regclass, text_column name, jsonb_column name, backfill boolean DEFAULT true)
RETURNS void LANGUAGE sql AS $$ SELECT @extschema@._biomed_ner_manage('watch', tab, text_column, jsonb_column, backfill) $$;
CREATE FUNCTION biomed_ner_unwatch(tab regclass) RETURNS void
LANGUAGE sql AS $$ SELECT @extschema@._biomed_ner_manage('unwatch', tab) $$;
CREATE FUNCTION biomed_ner_watch_pause(tab regclass) RETURNS void
LANGUAGE sql AS $$ SELECT @extschema@._biomed_ner_manage('pause', tab) $$;
CREATE FUNCTION biomed_ner_watch_resume(tab regclass) RETURNS void
LANGUAGE sql AS $$ SELECT @extschema@._biomed_ner_manage('resume', tab) $$;
-- Releases the failed and skipped rows of `tab` (after raising biomed_ner.max_chars, say): they
-- are pending again. Returns how many.
CREATE FUNCTION biomed_ner_queue_retry(tab regclass) RETURNS bigint
LANGUAGE sql AS $$ SELECT @extschema@._biomed_ner_manage('retry', tab) $$;
-- Runs the table's batches in this session until nothing is pending (or max_rows are taken).
CREATE FUNCTION biomed_ner_queue_drain(tab regclass, max_rows bigint DEFAULT NULL) RETURNS bigint
LANGUAGE sql AS $$ SELECT @extschema@._biomed_ner_manage('drain', tab, n => max_rows) $$;

CREATE FUNCTION _biomed_ner_watch_impl(tab regclass, text_column name, jsonb_column name, backfill boolean)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ttype regtype; jtype regtype; key_col name; key_type text; key_base regtype; rls boolean; distributed boolean;
    persistence "char"; schema oid; prefix text; suffix text; index_name text; n int := 0; versions text[];
    w @extschema@.biomed_ner_watches;
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
    -- A row is pending while its jsonb column is NULL: a column that cannot be NULL, or that new
    -- rows fill by default, would make the watch's trigger fail updates or leave new rows alone.
    IF (SELECT attnotnull OR atthasdef FROM pg_attribute WHERE attrelid = tab AND attname = jsonb_column) THEN
        RAISE EXCEPTION 'column "%" of table % is NOT NULL or has a default, so its rows can never be pending', jsonb_column, tab
            USING ERRCODE = '55000',
            HINT = 'A watched table''s rows wait for their entities with a NULL jsonb column: ALTER TABLE ... ALTER COLUMN ... DROP NOT NULL, DROP DEFAULT.';
    END IF;
    SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid INTO key_col, key_type, key_base
    FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = tab AND i.indisprimary AND i.indnkeyatts = 1;
    IF key_col IS NULL THEN
        RAISE EXCEPTION 'table % has no single-column primary key', tab USING ERRCODE = '22023',
            HINT = 'A watch finds rows again by their primary key: add one, e.g. ALTER TABLE notes ADD PRIMARY KEY (id).';
    END IF;
    -- The queue carries keys as text between its statements, so a key's text must give the same
    -- key back whatever the session's settings (a float's text depends on extra_float_digits, a
    -- timestamp's on DateStyle): integers, numeric, text and uuid, and domains over them.
    WHILE (SELECT typtype = 'd' FROM pg_type WHERE oid = key_base) LOOP
        key_base := (SELECT typbasetype FROM pg_type WHERE oid = key_base);
    END LOOP;
    IF key_base NOT IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype, 'text'::regtype,
                        'varchar'::regtype, 'uuid'::regtype) THEN
        RAISE EXCEPTION 'the primary key of table % is of type %, which a watch does not support', tab, key_type
            USING ERRCODE = '0A000',
            HINT = 'A watched table''s key must be an integer, numeric, text, varchar or uuid column (or a domain over one): add one, e.g. ALTER TABLE notes ADD COLUMN note_id bigint GENERATED ALWAYS AS IDENTITY, and make it the primary key.';
    END IF;
    SELECT relrowsecurity, relpersistence INTO rls, persistence FROM pg_class WHERE oid = tab;
    IF persistence = 't' THEN
        RAISE EXCEPTION 'table % is temporary, and the queue worker cannot see another session''s temporary tables', tab
            USING ERRCODE = '0A000', HINT = 'Use the trigger biomed_ner_annotate on a temporary table instead.';
    END IF;
    IF rls THEN
        RAISE EXCEPTION 'table % has row-level security, which the queue worker''s writes would not apply', tab
            USING ERRCODE = '0A000', HINT = 'Use the trigger biomed_ner_annotate on this table instead.';
    END IF;
    -- Citus: the shards' rows are on other nodes, where nothing drains them.
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)' INTO distributed USING tab;
        IF distributed THEN
            RAISE EXCEPTION 'table % is distributed by Citus, where watched tables are not supported', tab
                USING ERRCODE = '0A000',
                HINT = 'Annotate it with INSERT ... SELECT into a colocated table, or with the trigger biomed_ner_annotate (README: Scaling out with Citus).';
        END IF;
    END IF;
    IF NOT (has_table_privilege(@extschema@._biomed_ner_caller(), tab, 'SELECT') AND has_table_privilege(@extschema@._biomed_ner_caller(), tab, 'TRIGGER')
            AND has_column_privilege(@extschema@._biomed_ner_caller(), tab, jsonb_column, 'UPDATE')) THEN
        RAISE EXCEPTION 'permission denied to watch table %', tab USING ERRCODE = '42501',
            HINT = 'Watching needs SELECT and TRIGGER on the table and UPDATE on its jsonb column.';
    END IF;
    IF EXISTS (SELECT 1 FROM @extschema@.biomed_ner_watches WHERE relid = tab) THEN
        RAISE EXCEPTION 'table % is already watched', tab USING ERRCODE = '42710',
            HINT = 'biomed_ner_unwatch it first to watch other columns.';
    END IF;
    -- The pending rows' index: the queue. PostgreSQL builds it as the table's owner. Its name is
    -- the table's, cut (by characters, so that a multibyte name stays whole) to leave room for
    -- the suffix within the 63 bytes of a name, and numbered when taken. Nothing finds the index
    -- by this name later: unwatch finds it by its table and its predicate.
    SELECT c.relnamespace, c.relname INTO schema, prefix FROM pg_class c WHERE c.oid = tab;
    LOOP
        suffix := '_biomed_ner_pending' || CASE WHEN n > 0 THEN n::text ELSE '' END;
        WHILE octet_length(prefix) + octet_length(suffix) > 63 LOOP
            prefix := left(prefix, -1);
        END LOOP;
        index_name := prefix || suffix;
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = index_name AND relnamespace = schema);
        n := n + 1;
        IF n > 1000 THEN
            RAISE EXCEPTION 'no free name for the pending index of table %', tab USING ERRCODE = '42P07';
        END IF;
    END LOOP;
    EXECUTE format('CREATE INDEX %I ON %s (%I) WHERE %I IS NULL AND %I IS NOT NULL AND @extschema@._biomed_ner_watched()',
                   index_name, tab, key_col, jsonb_column, text_column);
    EXECUTE format('CREATE TRIGGER biomed_ner_watch_update BEFORE UPDATE OF %I ON %s FOR EACH ROW
                    WHEN (OLD.%I IS DISTINCT FROM NEW.%I AND NEW.%I IS NOT NULL)
                    EXECUTE FUNCTION @extschema@._biomed_ner_invalidate(%L)',
                   text_column, tab, text_column, text_column, jsonb_column, jsonb_column);
    INSERT INTO @extschema@.biomed_ner_watches (relid, text_column, jsonb_column, key_column, key_type, pending_index, owner)
    VALUES (tab, text_column, jsonb_column, key_col, key_type, index_name, @extschema@._biomed_ner_caller())
    RETURNING * INTO w;
    IF NOT backfill THEN
        -- The rows pending now stay as they are until they are written again.
        versions := @extschema@._biomed_ner_as_owner(w,
            format('SELECT pg_catalog.array_agg(%s) %s', @extschema@._biomed_ner_version(key_col), @extschema@._biomed_ner_pending_rows(w)),
            ARRAY[]::text[]);
        INSERT INTO @extschema@.biomed_ner_held (relid, key, row_xmin, row_ctid, reason)
        SELECT tab, x.key, x.row_xmin, x.row_ctid, 'not backfilled' FROM @extschema@._biomed_ner_versions(versions) x;
    END IF;
END $$;

-- The watch's trigger and pending index are found by what they are (the trigger's function, the
-- index's predicate) on this very table, never by a name: a name stored at watch time may since
-- belong to another table, even another owner's.
CREATE FUNCTION _biomed_ner_unwatch_impl(tab regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
    PERFORM @extschema@._biomed_ner_check_manager(tab);
    FOR r IN SELECT t.tgname FROM pg_trigger t
             WHERE t.tgrelid = tab AND t.tgfoid = '@extschema@._biomed_ner_invalidate()'::regprocedure LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, tab);
    END LOOP;
    FOR r IN SELECT i.indexrelid::regclass AS idx FROM pg_index i
             WHERE i.indrelid = tab AND EXISTS (
                 SELECT 1 FROM pg_depend d
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
                   AND d.refclassid = 'pg_proc'::regclass AND d.refobjid = '@extschema@._biomed_ner_watched()'::regprocedure) LOOP
        EXECUTE format('DROP INDEX %s', r.idx);
    END LOOP;
    DELETE FROM @extschema@.biomed_ner_watches WHERE relid = tab;
    DELETE FROM @extschema@.biomed_ner_held WHERE relid = tab;
    DELETE FROM @extschema@.biomed_ner_batches WHERE relid = tab;
END $$;

CREATE FUNCTION _biomed_ner_set_paused(tab regclass, pause boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM @extschema@._biomed_ner_check_manager(tab);
    UPDATE @extschema@.biomed_ner_watches SET paused = pause WHERE relid = tab;
END $$;
CREATE FUNCTION _biomed_ner_retry_impl(tab regclass) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE n bigint;
BEGIN
    PERFORM @extschema@._biomed_ner_check_manager(tab);
    DELETE FROM @extschema@.biomed_ner_held WHERE relid = tab AND reason IN ('failed', 'skipped');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- Whether an error of annotating a row is that row's own (its text: too long, not convertible,
-- a tokenizer or internal failure on it), so the row is held as failed; any other error (no
-- model, the service restarting, a bad setting) leaves the queue as it is.
CREATE FUNCTION _biomed_ner_row_error(sqlstate text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT (sqlstate LIKE '22%' AND sqlstate <> '22023') OR sqlstate LIKE '54%' OR sqlstate = 'XX000'
$$;

-- Runs `query` (one parameter, `keys`; one row of one text[] column) on the watched table of `w`
-- as the table's owner, with the owner's search_path (src/queue/as_owner.rs).
CREATE FUNCTION _biomed_ner_as_owner(w @extschema@.biomed_ner_watches, query text, keys text[], writes boolean DEFAULT false)
RETURNS text[] LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT @extschema@._biomed_ner_run_as(o, @extschema@._biomed_ner_role_search_path(o), query, keys, writes)
    FROM (SELECT @extschema@._biomed_ner_table_owner(w.relid) AS o) x
$$;

-- One batch of `tab`, in the caller's transaction: up to `batch` pending rows (jsonb column
-- NULL, text not NULL, not held; in key order, through the pending index) read, annotated with
-- their text in one batched call, and written where the text is still the one annotated and the
-- jsonb column still NULL. Nothing is locked while the model runs (the queue's inference may run
-- at a low priority, and a writer of the table must never wait for it): a row is locked only by
-- the UPDATE that writes it, which skips it if it changed meanwhile, so it stays pending with its
-- new text. A row that fails alone is held as failed and does not hold back the others. A row
-- whose write a trigger of the table skipped is held as skipped (or it would come first in every
-- batch). Returns the rows written or held; -1 when the table's batch failed as a whole (an
-- error that is not a row's own: the model cannot load, or anything the table's owner did to the
-- table: a policy or trigger that raises, a renamed column), which is then the watch's
-- last_error and nothing else changed. It never raises for such an error, so that one table
-- cannot stop the queue of the others.
-- Not for PUBLIC: the queue worker and biomed_ner_queue_drain call it.
CREATE FUNCTION _biomed_ner_drain(tab oid, batch int) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    w @extschema@.biomed_ner_watches; owner_oid oid;
    versions text[]; keys text[]; done_keys text[]; one text[]; still text[]; gone text[];
    failed_keys text[] := ARRAY[]::text[]; k text; st text; msg text; stopped boolean := false;
    pending text; annotate text;
BEGIN
    -- An idle table costs a read and writes nothing (the worker asks four times a second).
    SELECT * INTO w FROM @extschema@.biomed_ner_watches WHERE relid = tab;
    IF NOT FOUND OR w.paused THEN
        RETURN 0;
    END IF;
    owner_oid := @extschema@._biomed_ner_table_owner(tab);
    IF owner_oid IS NULL THEN
        -- The table was dropped (with its index and trigger): its watch goes too.
        DELETE FROM @extschema@.biomed_ner_watches WHERE relid = tab;
        DELETE FROM @extschema@.biomed_ner_held WHERE relid = tab;
        RETURN 0;
    END IF;
    IF @extschema@._biomed_ner_forced_rls(tab, true) THEN
        msg := format('row-level security is forced on %s, which a watch does not support; the watch waits', tab::regclass);
        UPDATE @extschema@.biomed_ner_watches SET last_error = msg, last_error_at = now()
        WHERE relid = tab AND last_error IS DISTINCT FROM msg;
        RETURN -1;
    END IF;
    IF NOT (has_table_privilege(owner_oid, tab, 'SELECT') AND has_column_privilege(owner_oid, tab, w.jsonb_column, 'UPDATE')) THEN
        msg := format('the table''s owner %s may not read %s or write its column %s; the watch waits',
                      owner_oid::regrole, tab::regclass, w.jsonb_column);
        UPDATE @extschema@.biomed_ner_watches SET last_error = msg, last_error_at = now()
        WHERE relid = tab AND last_error IS DISTINCT FROM msg;
        RETURN 0;
    END IF;
    -- Every read and write of the watched table runs as its owner (_biomed_ner_as_owner), so that
    -- no function of the table's (a domain's CHECK, a trigger, the key type's comparison) runs
    -- with this one's rights. The pending rows' versions.
    pending := format('SELECT pg_catalog.array_agg(v) FROM (SELECT %1$s AS v %2$s ORDER BY t.%3$I LIMIT %4$s) p',
                      @extschema@._biomed_ner_version(w.key_column), @extschema@._biomed_ner_pending_rows(w), w.key_column, batch);
    versions := @extschema@._biomed_ner_as_owner(w, pending, ARRAY[]::text[]);
    IF versions IS NULL THEN
        -- Nothing pending: the failed and skipped rows deleted since leave the failures.
        IF EXISTS (SELECT 1 FROM @extschema@.biomed_ner_held WHERE relid = tab AND reason <> 'not backfilled') THEN
            gone := @extschema@._biomed_ner_as_owner(w,
                format('SELECT pg_catalog.array_agg(x) FROM pg_catalog.unnest($1) x WHERE NOT EXISTS (SELECT 1 FROM %s t WHERE t.%I OPERATOR(pg_catalog.=) x::%s)',
                       tab::regclass, w.key_column, w.key_type),
                (SELECT array_agg(key) FROM @extschema@.biomed_ner_held WHERE relid = tab AND reason <> 'not backfilled'));
            DELETE FROM @extschema@.biomed_ner_held WHERE relid = tab AND key = ANY (gone);
        END IF;
        RETURN 0;
    END IF;
    -- One batch of a table at a time (the worker's, a session's drain): lock its watch, then read
    -- the pending rows again, since a batch that held the lock may have written them.
    SELECT * INTO w FROM @extschema@.biomed_ner_watches WHERE relid = tab FOR UPDATE;
    IF NOT FOUND OR w.paused THEN
        RETURN 0;
    END IF;
    versions := @extschema@._biomed_ner_as_owner(w, pending, ARRAY[]::text[]);
    IF versions IS NULL THEN
        RETURN 0;
    END IF;
    SELECT array_agg(x.key) INTO keys FROM @extschema@._biomed_ner_versions(versions) x;
    -- Read the rows, annotate their text in one batched call, write each result where the text
    -- is still the one annotated and the column still NULL (the UPDATE re-checks both on the
    -- row's latest version).
    annotate := format($f$
        WITH rows AS MATERIALIZED (
            SELECT t.%1$I AS k, t.%2$I::text AS body FROM %3$s t
            WHERE t.%1$I OPERATOR(pg_catalog.=) ANY ($1::%4$s[]) AND t.%5$I IS NULL AND t.%2$I IS NOT NULL),
        batch AS (SELECT pg_catalog.array_agg(k) AS ks, pg_catalog.array_agg(body) AS bodies,
                         @extschema@.biomed_ner(pg_catalog.array_agg(body)) AS es FROM rows),
        results AS (SELECT pg_catalog.unnest(ks) AS k, pg_catalog.unnest(bodies) AS body, pg_catalog.unnest(es) AS e FROM batch),
        written AS (UPDATE %3$s t SET %5$I = r.e FROM results r
                    WHERE t.%1$I OPERATOR(pg_catalog.=) r.k AND t.%2$I::text OPERATOR(pg_catalog.=) r.body AND t.%5$I IS NULL
                    RETURNING t.%1$I::text AS k)
        SELECT pg_catalog.array_agg(k) FROM written$f$, w.key_column, w.text_column, tab::regclass, w.key_type, w.jsonb_column);
    BEGIN
        done_keys := @extschema@._biomed_ner_as_owner(w, annotate, keys, writes => true);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        IF NOT @extschema@._biomed_ner_row_error(st) THEN
            -- Not the rows' fault: to the handler below.
            RAISE;
        END IF;
        -- One row's failure (a note over max_chars, say) must not hold back the others: one at a time.
        done_keys := ARRAY[]::text[];
        FOREACH k IN ARRAY keys LOOP
            BEGIN
                one := @extschema@._biomed_ner_as_owner(w, annotate, ARRAY[k], writes => true);
                done_keys := done_keys || coalesce(one, ARRAY[]::text[]);
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
                UPDATE @extschema@.biomed_ner_watches SET last_error = format('%s: %s (row %s)', st, msg, k), last_error_at = now()
                WHERE relid = tab;
                stopped := NOT @extschema@._biomed_ner_row_error(st);
                EXIT WHEN stopped;
                INSERT INTO @extschema@.biomed_ner_held (relid, key, row_xmin, row_ctid, reason, sqlstate, error)
                SELECT tab, k, x.row_xmin, x.row_ctid, 'failed', st, msg FROM @extschema@._biomed_ner_versions(versions) x
                WHERE x.key = k
                ON CONFLICT (relid, key) DO UPDATE SET row_xmin = excluded.row_xmin, row_ctid = excluded.row_ctid,
                    reason = excluded.reason, sqlstate = excluded.sqlstate, error = excluded.error, held_at = now();
                failed_keys := failed_keys || k;
            END;
        END LOOP;
    END;
    done_keys := coalesce(done_keys, ARRAY[]::text[]);
    -- Rows neither written nor failed: deleted or changed meanwhile (nothing to do: a changed
    -- row is pending in its new version), or, still pending in the very version read, skipped
    -- by a trigger of the table: held, so that they do not come first in every batch.
    IF NOT stopped AND cardinality(done_keys) + cardinality(failed_keys) < cardinality(keys) THEN
        still := @extschema@._biomed_ner_as_owner(w,
            format('SELECT pg_catalog.array_agg(%1$s) FROM %2$s t WHERE t.%3$I OPERATOR(pg_catalog.=) ANY ($1::%4$s[]) AND t.%5$I IS NULL',
                   @extschema@._biomed_ner_version(w.key_column), tab::regclass, w.key_column, w.key_type, w.jsonb_column),
            (SELECT array_agg(x) FROM unnest(keys) x WHERE x <> ALL (done_keys) AND x <> ALL (failed_keys)));
        INSERT INTO @extschema@.biomed_ner_held (relid, key, row_xmin, row_ctid, reason, error)
        SELECT tab, x.key, x.row_xmin, x.row_ctid, 'skipped', 'the write of its entities was skipped by a trigger of the table'
        FROM @extschema@._biomed_ner_versions(versions) x WHERE x.v = ANY (still)
        ON CONFLICT (relid, key) DO UPDATE SET row_xmin = excluded.row_xmin, row_ctid = excluded.row_ctid,
            reason = excluded.reason, sqlstate = NULL, error = excluded.error, held_at = now();
    END IF;
    -- A row held before (failed, say) that has now gone through.
    DELETE FROM @extschema@.biomed_ner_held WHERE relid = tab AND key = ANY (done_keys);
    UPDATE @extschema@.biomed_ner_watches SET done = done + cardinality(done_keys) WHERE relid = tab;
    INSERT INTO @extschema@.biomed_ner_batches (relid, rows) VALUES (tab, cardinality(done_keys));
    DELETE FROM @extschema@.biomed_ner_batches WHERE at < now() - interval '10 minutes';
    -- Stopped by an error that is not a row's own: the rest of the batch is left for later.
    RETURN CASE WHEN stopped THEN -1 ELSE cardinality(keys) END;
EXCEPTION WHEN OTHERS THEN
    -- The table's batch failed as a whole: everything it did is undone; the error is the watch's.
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    UPDATE @extschema@.biomed_ner_watches SET last_error = format('%s: %s', st, msg), last_error_at = now()
    WHERE relid = tab;
    RETURN -1;
END $$;
REVOKE ALL ON FUNCTION _biomed_ner_drain(oid, int) FROM PUBLIC;
REVOKE ALL ON FUNCTION _biomed_ner_run_as(oid, text, text, text[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION _biomed_ner_as_owner(@extschema@.biomed_ner_watches, text, text[], boolean) FROM PUBLIC;

CREATE FUNCTION _biomed_ner_drain_impl(tab regclass, max_rows bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE n bigint := 0; got int;
BEGIN
    PERFORM @extschema@._biomed_ner_check_manager(tab);
    LOOP
        got := @extschema@._biomed_ner_drain(tab, least(coalesce(max_rows - n, 64), 64)::int);
        IF got < 0 THEN
            -- The batch failed as a whole: what it says is the watch's last_error.
            RAISE WARNING 'biomed_ner_queue_drain(%): the batch failed; the rows stay pending', tab
                USING DETAIL = coalesce((SELECT s.last_error FROM @extschema@.biomed_ner_queue_status s WHERE s.table_name = tab), ''),
                      HINT = 'SELECT last_error FROM biomed_ner_queue_status says why; drain again once it is mended.';
            EXIT;
        END IF;
        n := n + got;
        EXIT WHEN got = 0 OR (max_rows IS NOT NULL AND n >= max_rows);
    END LOOP;
    RETURN n;
END $$;

-- Held entries whose row version is gone (the row deleted, or written again, which made it
-- pending anyway): up to `n` entries after position `after` ('relid:key'; NULL: from the first)
-- in the key's order are checked, as each table's owner, and those of gone versions deleted.
-- Returns the position reached, NULL after the last entry. The queue worker walks all held
-- entries this way, a slice a minute while idle (src/queue/worker.rs): a table watched without
-- backfill may hold millions, too many to check at every round as the drain checks the failed.
CREATE FUNCTION _biomed_ner_prune_held(after text, n int) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record; w @extschema@.biomed_ner_watches; live text[]; reached text; seen bigint := 0;
BEGIN
    FOR r IN
        SELECT s.relid, array_agg(s.row_xmin::text || ':' || s.row_ctid::text || ':' || s.key) AS versions,
               max(s.key) AS last_key, count(*) AS entries
        FROM (SELECT h.relid, h.key, h.row_xmin, h.row_ctid FROM @extschema@.biomed_ner_held h
              WHERE after IS NULL
                 OR (h.relid, h.key) > (split_part(after, ':', 1)::oid::regclass, substr(after, strpos(after, ':') + 1))
              ORDER BY h.relid, h.key LIMIT n) s
        GROUP BY s.relid ORDER BY s.relid
    LOOP
        seen := seen + r.entries;
        reached := r.relid::oid::text || ':' || r.last_key;
        SELECT * INTO w FROM @extschema@.biomed_ner_watches WHERE relid = r.relid;
        -- A dropped table's entries go with its watch (_biomed_ner_drain); an owner that may no
        -- longer read the table leaves them for later.
        CONTINUE WHEN NOT FOUND OR NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = r.relid)
                      OR NOT has_table_privilege(@extschema@._biomed_ner_table_owner(r.relid), r.relid, 'SELECT')
                      OR @extschema@._biomed_ner_forced_rls(r.relid, false);
        BEGIN
            live := @extschema@._biomed_ner_as_owner(w,
                format('SELECT pg_catalog.array_agg(x.v) FROM @extschema@._biomed_ner_versions($1) x WHERE EXISTS (SELECT 1 FROM %s t
                        WHERE t.%I OPERATOR(pg_catalog.=) x.key::%s AND t.xmin OPERATOR(pg_catalog.=) x.row_xmin
                          AND t.ctid OPERATOR(pg_catalog.=) x.row_ctid)',
                       r.relid::regclass, w.key_column, w.key_type),
                r.versions);
        EXCEPTION WHEN OTHERS THEN
            -- Whatever the table's owner did to it (a policy that raises, a renamed column) is
            -- the drain's to report; its entries wait for the next walk.
            CONTINUE;
        END;
        DELETE FROM @extschema@.biomed_ner_held h
        WHERE h.relid = r.relid AND h.row_xmin::text || ':' || h.row_ctid::text || ':' || h.key = ANY (r.versions)
          AND h.row_xmin::text || ':' || h.row_ctid::text || ':' || h.key <> ALL (coalesce(live, ARRAY[]::text[]));
    END LOOP;
    RETURN CASE WHEN seen < n THEN NULL ELSE reached END;
END $$;
REVOKE ALL ON FUNCTION _biomed_ner_prune_held(text, int), _biomed_ner_forced_rls(oid, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION _biomed_ner_check_manager(oid), _biomed_ner_watch_impl(regclass, name, name, boolean),
    _biomed_ner_unwatch_impl(regclass), _biomed_ner_set_paused(regclass, boolean), _biomed_ner_retry_impl(regclass),
    _biomed_ner_drain_impl(regclass, bigint) FROM PUBLIC;

-- The pending rows of `tab` and how long the oldest has waited: since the queue worker's clock
-- (biomed_ner_clock) last read a transaction id at most its xmin's, and at most since the table
-- was watched. NULLs unless both the session user and the table's owner may read the table, and
-- when counting fails (whatever the table's owner did to it is the drain's last_error): the status
-- view never raises for its reader.
CREATE FUNCTION _biomed_ner_pending(tab oid, OUT pending bigint, OUT oldest_pending_age interval)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE w @extschema@.biomed_ner_watches; counts text[]; since timestamptz; target numeric;
BEGIN
    SELECT * INTO w FROM @extschema@.biomed_ner_watches WHERE relid = tab;
    IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = tab)
       OR NOT has_table_privilege(session_user, tab, 'SELECT')
       OR NOT has_table_privilege(@extschema@._biomed_ner_table_owner(tab), tab, 'SELECT')
       OR @extschema@._biomed_ner_forced_rls(tab, false) THEN
        RETURN;
    END IF;
    BEGIN
        counts := @extschema@._biomed_ner_as_owner(w,
            format('SELECT ARRAY[pg_catalog.count(*)::text, pg_catalog.max(pg_catalog.age(t.xmin))::text] %s', @extschema@._biomed_ner_pending_rows(w)),
            ARRAY[]::text[]);
    EXCEPTION WHEN OTHERS THEN
        RETURN;
    END;
    pending := counts[1]::bigint;
    IF pending > 0 THEN
        -- The oldest pending version's transaction id, from its age.
        target := pg_snapshot_xmax(pg_current_snapshot())::text::numeric - counts[2]::numeric;
        IF target >= 0 THEN
            SELECT c.at INTO since FROM @extschema@.biomed_ner_clock c WHERE c.xid <= target::text::xid8
            ORDER BY c.xid DESC LIMIT 1;
        END IF;
        oldest_pending_age := now() - greatest(since, w.created_at);
    END IF;
END $$;

-- The queue worker's reading of the clock (src/queue/worker.rs); the readings older than a day
-- go, a hundred at most at a time, through the key (readings are in the order of their ids).
CREATE FUNCTION _biomed_ner_clock_tick(xid xid8, at timestamptz) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO @extschema@.biomed_ner_clock VALUES (xid, at) ON CONFLICT DO NOTHING;
    DELETE FROM @extschema@.biomed_ner_clock WHERE xid IN (
        SELECT c.xid FROM @extschema@.biomed_ner_clock c ORDER BY c.xid LIMIT 100) AND at < now() - interval '1 day';
$$;
REVOKE ALL ON FUNCTION _biomed_ner_clock_tick(xid8, timestamptz) FROM PUBLIC;

CREATE VIEW biomed_ner_queue_status WITH (security_barrier) AS
SELECT w.relid::regclass AS table_name, w.text_column, w.jsonb_column, w.owner::regrole AS owner, w.paused,
       p.pending, w.done,
       (SELECT count(*) FROM @extschema@.biomed_ner_held h WHERE h.relid = w.relid AND h.reason <> 'not backfilled') AS failed,
       p.oldest_pending_age,
       (SELECT round(coalesce(sum(b.rows), 0) / 60.0, 2) FROM @extschema@.biomed_ner_batches b
        WHERE b.relid = w.relid AND b.at > now() - interval '1 minute') AS rows_per_second,
       -- A model's load error quotes paths and file content: only for roles that may read
       -- server files, as biomed_ner() itself shows them (src/access.rs).
       CASE WHEN left(w.last_error, 6) IN ('58P01:', 'F0000:', '42501:', '58000:')
                 AND NOT (pg_has_role('pg_read_server_files', 'USAGE')
                          OR (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user))
            THEN left(w.last_error, 5) || ': the model cannot be loaded or read; a role that may read server files sees why'
            ELSE w.last_error END AS last_error,
       w.last_error_at
FROM @extschema@.biomed_ner_watches w
CROSS JOIN LATERAL @extschema@._biomed_ner_pending(w.relid) p
WHERE has_table_privilege(w.relid, 'SELECT');
GRANT SELECT ON biomed_ner_queue_status TO PUBLIC;

-- The failed and skipped rows of the watched tables one may read.
CREATE VIEW biomed_ner_queue_failures WITH (security_barrier) AS
SELECT h.relid::regclass AS table_name, h.key, h.reason, h.sqlstate, h.error, h.held_at AS failed_at
FROM @extschema@.biomed_ner_held h
WHERE h.reason <> 'not backfilled' AND has_table_privilege(h.relid, 'SELECT');
GRANT SELECT ON biomed_ner_queue_failures TO PUBLIC;
