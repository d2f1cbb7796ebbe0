//! Managing a watch on behalf of its caller.
//!
//! `biomed_ner_watch`, `unwatch`, `watch_pause`, `watch_resume`, `queue_retry` and `queue_drain`
//! write the extension's own tables and add or drop the watch's trigger and index, so their SQL
//! (the `_biomed_ner_*_impl` functions of `queue.sql`, not for PUBLIC) runs as the extension's
//! owner. Who may do it is decided by the role that called them: the current user at the call,
//! read here, before the switch to the extension's owner, so that neither a SECURITY DEFINER
//! function on the way nor the session's login role (a superuser's session running a table
//! owner's function, or the queue worker's session) lends its rights. [`_biomed_ner_caller`]
//! gives it to the SQL. Inside a security-restricted operation (a queue batch running a table's
//! own triggers, VACUUM, ANALYZE) they refuse to run at all.

use std::sync::atomic::{AtomicU32, Ordering};

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use crate::error::raise;
use crate::spi_read::read_two;

/// The role on whose behalf the extension's owner manages a watch now; 0 outside such a call.
static CALLER: AtomicU32 = AtomicU32::new(0);

/// The role that called the management function being run, or the current user outside one
/// (the extension's owner calling the SQL directly).
#[pg_extern(volatile, parallel_unsafe)]
fn _biomed_ner_caller() -> pg_sys::Oid {
    match CALLER.load(Ordering::Relaxed) {
        // Safety: reads the backend's current user.
        0 => unsafe { pg_sys::GetUserId() },
        oid => pg_sys::Oid::from(oid),
    }
}

/// Puts the previous caller back, on the way out and when an error unwinds.
struct CallerGuard(u32);

impl Drop for CallerGuard {
    fn drop(&mut self) {
        CALLER.store(self.0, Ordering::Relaxed);
    }
}

/// The SQL of each action, with its arguments as the parameters `$1`..$5, and whether it returns
/// a count (bigint) or nothing.
fn action_sql(action: &str, schema: &str) -> Option<(String, bool)> {
    let (call, counts) = match action {
        "watch" => ("_biomed_ner_watch_impl($1::regclass, $2::name, $3::name, $4)", false),
        "unwatch" => ("_biomed_ner_unwatch_impl($1::regclass)", false),
        "pause" => ("_biomed_ner_set_paused($1::regclass, true)", false),
        "resume" => ("_biomed_ner_set_paused($1::regclass, false)", false),
        "retry" => ("_biomed_ner_retry_impl($1::regclass)", true),
        "drain" => ("_biomed_ner_drain_impl($1::regclass, $5)", true),
        _ => return None,
    };
    Some((format!("SELECT {}.{call}", spi::quote_identifier(schema)), counts))
}

/// Runs the management `action` on table `tab` for the current user, as the extension's owner.
#[pg_extern(volatile, parallel_unsafe)]
fn _biomed_ner_manage(
    action: &str,
    tab: pg_sys::Oid,
    text_column: default!(Option<&str>, "NULL"),
    jsonb_column: default!(Option<&str>, "NULL"),
    flag: default!(Option<bool>, "NULL"),
    n: default!(Option<i64>, "NULL"),
) -> Option<i64> {
    const FUNCTION: &str = "_biomed_ner_manage";
    // Safety: reads a flag of the backend's security context.
    if unsafe { pg_sys::InSecurityRestrictedOperation() } {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("biomed_ner cannot {action} a watch inside a security-restricted operation"),
            "A queue batch runs a table's own triggers as its owner, restricted: manage watches from a session.",
            FUNCTION,
        );
    }
    // Safety: reads the backend's current user.
    let caller = unsafe { pg_sys::GetUserId() };
    let (owner, schema): (Option<pg_sys::Oid>, Option<String>) = read_two(
        "SELECT e.extowner, n.nspname::text FROM pg_catalog.pg_extension e
         JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'biomed_ner'",
    )
    .unwrap_or((None, None));
    let (Some(owner), Some(schema)) = (owner, schema) else {
        raise(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, "extension biomed_ner is not installed", "CREATE EXTENSION biomed_ner.", FUNCTION)
    };
    let Some((query, counts)) = action_sql(action, &schema) else {
        raise(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, format!("unknown action \"{action}\""), "This is a bug in biomed_ner.", FUNCTION)
    };
    // A drain in biomed_ner_progress, for the caller: rows done, of max_rows where given.
    let _progress = (action == "drain").then(|| crate::progress::begin(crate::progress::Command::QueueDrain, caller, tab, n, false));
    // As SECURITY DEFINER switches to a function's owner, with a safe search_path.
    let result = super::as_owner::as_role(owner, pg_sys::SECURITY_LOCAL_USERID_CHANGE, "pg_catalog, pg_temp", || {
        let _guard = CallerGuard(CALLER.swap(caller.to_u32(), Ordering::Relaxed));
        Spi::connect_mut(|client| {
            let args = [tab.into(), text_column.into(), jsonb_column.into(), flag.into(), n.into()];
            let rows = client.update(&query, None, &args)?;
            if counts { rows.first().get_one::<i64>() } else { Ok(None) }
        })
    });
    result.unwrap_or_else(|e| raise(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("biomed_ner {action} failed: {e}"), "This is a bug in biomed_ner.", FUNCTION))
}
