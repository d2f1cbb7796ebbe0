//! Errors as PostgreSQL sees them: every engine error gets a SQLSTATE and a hint.
//!
//! A [`Failure`] is such an error as plain data ([`biomed_ner_host::failure`]), made in this
//! backend or in the inference service's model process, and raised here.

use biomed_ner_host::{Failure, SqlState};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// Raises an ERROR with `code`, `message` and `hint`; never returns.
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>, hint: impl Into<String>, function: &'static str) -> ! {
    ErrorReport::new(code, message.into(), function).set_hint(hint.into()).report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// PostgreSQL's error code of a SQLSTATE.
pub fn code(state: SqlState) -> PgSqlErrorCode {
    PgSqlErrorCode::from(state.packed())
}

/// Raises `failure`, as `details` allow: without them, a redacted failure shows its redacted
/// words and the full message goes to the server log only.
pub fn raise_failure(failure: &Failure, details: bool, function: &'static str) -> ! {
    match &failure.redacted {
        Some((message, hint)) if !details => {
            ErrorReport::new(PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION, format!("biomed_ner: {}", failure.message), function)
                .report(PgLogLevel::LOG_SERVER_ONLY);
            raise(code(failure.code), message.clone(), hint.clone(), function)
        }
        _ => raise(code(failure.code), failure.message.clone(), failure.hint.clone(), function),
    }
}

/// Raises the engine's error `e` with the matching SQLSTATE.
pub fn raise_engine(e: biomed_ner_engine::Error, function: &'static str) -> ! {
    raise_failure(&Failure::engine(&e), true, function)
}

/// Raises an error from loading the model `setting` (the value of `biomed_ner.model`). Without
/// `details` (a role that may not read server files) the message keeps the kind of failure and
/// the SQLSTATE but not the paths and file content it would quote; the full message goes to
/// the server log only.
pub fn raise_load_error(e: biomed_ner_engine::Error, setting: &str, details: bool, function: &'static str) -> ! {
    raise_failure(&Failure::load(&e, setting), details, function)
}
