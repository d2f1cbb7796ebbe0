//! Running a batch's reads and writes of a watched table as the table's owner.
//!
//! The batch function runs as the extension's owner (a superuser) so that it may write the
//! extension's tables; the watched table's own triggers, defaults, domain checks, key type and
//! functions must not run with those rights, nor with those of whoever created the watch or
//! asked for the batch, or a table owner could have the queue run anything as a superuser. So
//! every statement that reads or writes the table (the pending rows' keys, the batch's
//! annotation and write, the look for held and deleted rows, the status view's counts) runs as
//! the table's owner, as a security-restricted operation (the way VACUUM and ANALYZE act as a
//! table's owner), with the owner's own search_path in this database (queue.sql,
//! `_biomed_ner_role_search_path`), and any setting it changes is undone afterwards.

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use crate::error::raise;

const FUNCTION: &str = "_biomed_ner_run_as";

/// Runs `f` as `role`, with `flags` added to the security context (as SECURITY DEFINER and the
/// maintenance commands switch user) and `search_path` set at a GUC nest level of its own; the
/// user, the context and every setting changed meanwhile are restored afterwards, and by the
/// (sub)transaction's abort when an error unwinds. The management calls (`manage.rs`) use it too.
pub fn as_role<R>(role: pg_sys::Oid, flags: u32, search_path: &str, f: impl FnOnce() -> R) -> R {
    let (mut user, mut context) = (pg_sys::Oid::INVALID, 0);
    let search_path = std::ffi::CString::new(search_path).unwrap_or_default();
    // Safety: switches the current user and opens a GUC nest level, in a transaction; the value
    // is a NUL-terminated string that outlives the call and is saved at that level.
    let nest_level = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        pg_sys::SetUserIdAndSecContext(role, context | flags as i32);
        let level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            search_path.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            pg_sys::PGERROR as i32,
            false,
        );
        level
    };
    let result = f();
    // Safety: restores what was saved above.
    unsafe {
        pg_sys::AtEOXact_GUC(false, nest_level);
        pg_sys::SetUserIdAndSecContext(user, context);
    }
    result
}

/// Runs `query` (one parameter: `keys`; one row with one `text[]` column) as `role` with
/// `search_path`, and returns that column. A query that does not `write` runs read-only and takes no transaction id
/// (an idle queue worker writes nothing; the status view works on a hot standby). Not for
/// PUBLIC (queue.sql revokes it): only the extension's SQL functions call it.
#[pg_extern(volatile, parallel_unsafe)]
fn _biomed_ner_run_as(
    role: pg_sys::Oid,
    search_path: &str,
    query: &str,
    keys: Vec<String>,
    writes: default!(bool, false),
) -> Option<Vec<Option<String>>> {
    // As a maintenance command acts as a table's owner: restricted, with the role's own
    // search_path (the batch function's is restricted to pg_catalog; the queries built by
    // queue.sql name every function and operator with its schema, so this path reaches only the
    // table's own code).
    let flags = pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION;
    let result = as_role(role, flags, search_path, || {
        Spi::connect_mut(|client| {
            let table = if writes { client.update(query, None, &[keys.into()]) } else { client.select(query, None, &[keys.into()]) };
            table.and_then(|table| table.first().get_one::<Vec<Option<String>>>())
        })
    });
    result.unwrap_or_else(|e| {
        raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("queue batch failed: {e}"), "This is a bug in biomed_ner.", FUNCTION)
    })
}
