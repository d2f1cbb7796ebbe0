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

/// Sets the setting `name` to `value` at the current GUC nest level (see `NewGUCNestLevel`), so
/// that `AtEOXact_GUC` at that level, or the transaction's abort, undoes it.
pub fn set_saved(name: &str, value: &str) {
    let (name, value) = (std::ffi::CString::new(name).unwrap_or_default(), std::ffi::CString::new(value).unwrap_or_default());
    // Safety: GUC calls in a transaction, with NUL-terminated strings that outlive the call.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            pg_sys::PGERROR as i32,
            false,
        );
    }
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
    let (mut user, mut context) = (pg_sys::Oid::INVALID, 0);
    // Safety: switches the current user for this statement, as PostgreSQL's maintenance
    // commands do; an error on the way is undone by the (sub)transaction's abort, which
    // restores the user and the settings.
    let nest_level = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        pg_sys::SetUserIdAndSecContext(
            role,
            context | (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32,
        );
        pg_sys::NewGUCNestLevel()
    };
    // The role's own search_path, as in its own sessions (the batch function's is restricted to
    // pg_catalog; the queries built by queue.sql name every function and operator with its
    // schema, so this path reaches only the table's own code); undone with the other settings
    // afterwards.
    set_saved("search_path", search_path);
    let result = Spi::connect_mut(|client| {
        let table = if writes { client.update(query, None, &[keys.into()]) } else { client.select(query, None, &[keys.into()]) };
        table.and_then(|table| table.first().get_one::<Vec<Option<String>>>())
    });
    // Safety: restores what was saved above.
    unsafe {
        pg_sys::AtEOXact_GUC(false, nest_level);
        pg_sys::SetUserIdAndSecContext(user, context);
    }
    result.unwrap_or_else(|e| {
        raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("queue batch failed: {e}"), "This is a bug in biomed_ner.", FUNCTION)
    })
}
