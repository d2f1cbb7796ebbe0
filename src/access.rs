//! What a role may make the server read.
//!
//! Reading files of the server is what PostgreSQL reserves for superusers and members of
//! `pg_read_server_files`. `biomed_ner.model` reads a folder's files, so:
//! - a model *name* (`SET biomed_ner.model = 'BIOMed_NER'`) is open to every role: it is looked
//!   up in the folders an administrator lists in `biomed_ner.model_path` (superusers only), and
//!   a name that leads out of them (`..`, a symbolic link) is refused;
//! - a model *folder* (`SET biomed_ner.model = '/srv/models/x'`) is open to superusers, members
//!   of `pg_read_server_files`, and the server's configuration (`postgresql.conf`, `ALTER
//!   SYSTEM`); anyone else is refused at `SET` and again at load, before the server touches the
//!   path, with an error that says nothing of whether it exists;
//! - errors while loading a model quote file content (a parse error shows the text it could
//!   not parse), so a role that may not read server files gets them without the details,
//!   which go to the server log only.

use std::ffi::CStr;
use std::path::PathBuf;

use biomed_ner_host::model_path::{find_in_roots, is_model_name};
use pgrx::{pg_sys, PgSqlErrorCode};

use crate::error::{raise, raise_failure};

/// Whether the current user may read any file of the server.
pub fn may_read_server_files() -> bool {
    // Safety: catalog lookups inside a transaction, as the callers are.
    unsafe { pg_sys::IsTransactionState() && reads_server_files(pg_sys::GetUserId()) }
}

/// Whether an error about a model's files may show what they hold: when both the current user
/// and the session's login role may read server files, so that a SECURITY DEFINER function of a
/// superuser does not show the role that called it (and chose the model) what it could not read.
pub fn may_see_file_details() -> bool {
    // Safety: catalog lookups inside a transaction, as the callers are.
    unsafe { pg_sys::IsTransactionState() && reads_server_files(pg_sys::GetUserId()) && reads_server_files(pg_sys::GetSessionUserId()) }
}

/// Whether the current user may see every session's activity: a superuser or a member of
/// `pg_read_all_stats`, as for PostgreSQL's own statistics views (the service's counters in
/// `biomed_ner_service()`, other roles' runs in `biomed_ner_progress`).
pub fn may_read_all_stats() -> bool {
    // Safety: catalog lookups inside a transaction, as the callers are.
    unsafe {
        let role = pg_sys::GetUserId();
        pg_sys::superuser_arg(role) || pg_sys::has_privs_of_role(role, pg_sys::Oid::from(pg_sys::ROLE_PG_READ_ALL_STATS))
    }
}

/// Whether `role` is a superuser or has the privileges of `pg_read_server_files`.
///
/// # Safety
/// Catalog lookups: inside a transaction.
unsafe fn reads_server_files(role: pg_sys::Oid) -> bool {
    // Safety: the caller's promise.
    unsafe { pg_sys::superuser_arg(role) || pg_sys::has_privs_of_role(role, pg_sys::Oid::from(pg_sys::ROLE_PG_READ_SERVER_FILES)) }
}

/// Whether the session's login role may read any file of the server (for values a session set
/// before the library was loaded, [`crate::gucs`]).
pub fn session_user_may_read_server_files() -> bool {
    // Safety: catalog lookups inside a transaction, as the callers are.
    unsafe { pg_sys::IsTransactionState() && reads_server_files(pg_sys::GetSessionUserId()) }
}

/// Whether `biomed_ner.model`'s current value comes from the server's configuration (a
/// default, `postgresql.conf`, `ALTER SYSTEM`, the command line) rather than from a session,
/// role or database setting.
/// Read-only ([`crate::spi_read`]): it runs in parallel workers and on hot standbys too.
fn model_set_by_server() -> bool {
    let source: Option<String> =
        crate::spi_read::read_one("SELECT source FROM pg_catalog.pg_settings WHERE name = 'biomed_ner.model'", &[]);
    matches!(source.as_deref(), Some("default" | "configuration file" | "command line" | "environment variable"))
}

/// Where a model comes from, once `biomed_ner.model` has been checked.
pub struct ModelSource {
    /// The folder to load, or `None` for the bundled model.
    pub folder: Option<PathBuf>,
    /// Whether load errors may show their details (file content) to this role.
    pub details: bool,
}

/// The refusal of a model folder, at `SET` ([`crate::gucs`]) and at load: the same words
/// whether the folder exists or not.
pub const FOLDER_REFUSED: &CStr = c"only superusers and members of pg_read_server_files may set biomed_ner.model to a folder";
pub const FOLDER_REFUSED_HINT: &CStr =
    c"Choose a model by name from the folders in biomed_ner.model_path (SET biomed_ner.model = 'NAME'), or '' for the bundled model.";

fn not_allowed(function: &'static str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        FOLDER_REFUSED.to_string_lossy(),
        FOLDER_REFUSED_HINT.to_string_lossy(),
        function,
    )
}

/// Resolves `biomed_ner.model` (`value`) for the current user, refusing what it may not read;
/// a name is looked up in `model_path` (`biomed_ner.model_path`).
pub fn resolve(value: &str, model_path: &[String], function: &'static str) -> ModelSource {
    let privileged = may_read_server_files();
    let details = may_see_file_details();
    if value.is_empty() {
        return ModelSource { folder: None, details: true };
    }
    if is_model_name(value) {
        let folder = find_in_roots(value, model_path).unwrap_or_else(|f| raise_failure(&f, true, function));
        return ModelSource { folder: Some(folder), details };
    }
    if privileged {
        return ModelSource { folder: Some(PathBuf::from(value)), details };
    }
    // A folder chosen by the server's configuration is the administrator's choice.
    if model_set_by_server() {
        return ModelSource { folder: Some(PathBuf::from(value)), details: false };
    }
    not_allowed(function)
}
