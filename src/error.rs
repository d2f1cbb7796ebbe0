//! Errors as PostgreSQL sees them: every engine error gets a SQLSTATE and a hint.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// Raises an ERROR with `code`, `message` and `hint`; never returns.
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>, hint: impl Into<String>, function: &'static str) -> ! {
    ErrorReport::new(code, message.into(), function).set_hint(hint.into()).report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// Raises the engine's error `e` with the matching SQLSTATE.
pub fn raise_engine(e: deberta_ner::Error, function: &'static str) -> ! {
    use deberta_ner::Error as E;
    let model_hint = "Set biomed_ner.model to a folder with config.json, tokenizer.json and model.safetensors \
                      (or pytorch_model.bin) that the server can read, or to '' for the bundled model.";
    let (code, hint): (PgSqlErrorCode, String) = match &e {
        E::ModelNotFound { .. } | E::MissingFile { .. } => (PgSqlErrorCode::ERRCODE_UNDEFINED_FILE, model_hint.into()),
        _ if permission_denied(&e) => (
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "The server runs as its own operating-system user: give it read access to the model folder and its files.".into(),
        ),
        E::BadFile { .. } | E::Unsupported(_) | E::Weight { .. } => (
            PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
            "The model folder must hold a DeBERTa-v2/v3 token classifier saved by transformers; \
             check biomed_ner.model."
                .into(),
        ),
        E::InvalidOption(_) => (
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "Check biomed_ner.max_length, biomed_ner.stride and biomed_ner.batch_size.".into(),
        ),
        E::ResourceLimit(_) => (
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            "Lower biomed_ner.max_length (shorter windows), or ask an administrator to raise biomed_ner.max_memory.".into(),
        ),
        E::Tokenizer(_) => (
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            "The tokenizer could not encode this text.".into(),
        ),
        E::Cancelled => (PgSqlErrorCode::ERRCODE_QUERY_CANCELED, "The query was cancelled.".into()),
        E::Candle(_) => (
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "This is a bug in biomed_ner or a model it cannot run; please report it with the model's config.json."
                .into(),
        ),
    };
    raise(code, e.to_string(), hint, function)
}

/// Whether `e` is the operating system refusing the server a model file or folder.
fn permission_denied(e: &deberta_ner::Error) -> bool {
    matches!(e, deberta_ner::Error::BadFile { reason, .. } if reason.contains("ermission denied"))
}

/// Raises an error from loading the model `setting` (the value of `biomed_ner.model`). Without
/// `details` (a role that may not read server files) the message keeps the kind of failure and
/// the SQLSTATE but not the paths and file content it would quote; the full message goes to
/// the server log only.
pub fn raise_load_error(e: deberta_ner::Error, setting: &str, details: bool, function: &'static str) -> ! {
    use deberta_ner::Error as E;
    if details || matches!(e, E::Cancelled | E::ResourceLimit(_) | E::InvalidOption(_)) {
        raise_engine(e, function)
    }
    ErrorReport::new(PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION, format!("biomed_ner: loading model \"{setting}\": {e}"), function)
        .report(PgLogLevel::LOG_SERVER_ONLY);
    let (code, what) = match &e {
        E::ModelNotFound { .. } | E::MissingFile { .. } => (PgSqlErrorCode::ERRCODE_UNDEFINED_FILE, "a file it needs is missing"),
        _ if permission_denied(&e) => {
            (PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, "the server may not read its files")
        }
        E::BadFile { .. } => (PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR, "one of its files is not valid"),
        E::Unsupported(_) | E::Weight { .. } => {
            (PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR, "it is not a DeBERTa-v2/v3 token classifier this engine can run")
        }
        _ => (PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, "of an internal error"),
    };
    raise(
        code,
        format!("model \"{setting}\" cannot be loaded: {what}"),
        "The server log has the details; an administrator (or a role that may read server files) can read them.",
        function,
    )
}
