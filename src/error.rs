//! Errors as PostgreSQL sees them: every engine error gets a SQLSTATE and a hint.
//!
//! A [`Failure`] is such an error as plain data, so that the inference service (a process
//! that never calls PostgreSQL) can classify an engine error and send it to the backend that
//! raises it.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use serde::{Deserialize, Serialize};

/// Raises an ERROR with `code`, `message` and `hint`; never returns.
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>, hint: impl Into<String>, function: &'static str) -> ! {
    ErrorReport::new(code, message.into(), function).set_hint(hint.into()).report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// An error to raise: SQLSTATE, message and hint. `redacted` is what a role that may not read
/// server files sees instead (errors of loading a model quote paths and file content).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub code: i32,
    pub message: String,
    pub hint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<(String, String)>,
}

impl Failure {
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self { code: code as i32, message: message.into(), hint: hint.into(), redacted: None }
    }

    pub fn code(&self) -> PgSqlErrorCode {
        PgSqlErrorCode::from(self.code)
    }

    /// The engine's error `e` with its SQLSTATE and hint.
    pub fn engine(e: &deberta_ner::Error) -> Self {
        use deberta_ner::Error as E;
        let model_hint = "Set biomed_ner.model to a folder with config.json, a tokenizer (tokenizer.json, vocab.txt, spm.model or sentencepiece.bpe.model) and \
                          model.safetensors (or pytorch_model.bin) that the server can read, or to '' for the bundled model.";
        let (code, hint): (PgSqlErrorCode, &str) = match e {
            E::ModelNotFound { .. } | E::MissingFile { .. } => (PgSqlErrorCode::ERRCODE_UNDEFINED_FILE, model_hint),
            _ if permission_denied(e) => (
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "The server runs as its own operating-system user: give it read access to the model folder and its files.",
            ),
            E::BadFile { .. } | E::Unsupported(_) | E::Weight { .. } => (
                PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
                "The model folder must hold a token classifier saved by transformers (DeBERTa-v2/v3, BERT, DistilBERT, RoBERTa, XLM-RoBERTa or ELECTRA); check biomed_ner.model.",
            ),
            E::InvalidOption(_) => (
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "Check biomed_ner.max_length, biomed_ner.stride and biomed_ner.batch_size.",
            ),
            E::ResourceLimit(_) => (
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                "Lower biomed_ner.max_length (shorter windows), or ask an administrator to raise biomed_ner.max_memory.",
            ),
            E::Tokenizer(_) => (PgSqlErrorCode::ERRCODE_DATA_EXCEPTION, "The tokenizer could not encode this text."),
            E::Cancelled => (PgSqlErrorCode::ERRCODE_QUERY_CANCELED, "The query was cancelled."),
            E::Candle(_) => (
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "This is a bug in biomed_ner or a model it cannot run; please report it with the model's config.json.",
            ),
        };
        Self::new(code, e.to_string(), hint)
    }

    /// An error of loading the model `setting` (the value of `biomed_ner.model`), with the
    /// words a role that may not read server files sees instead: the kind of failure and the
    /// SQLSTATE, not the paths and file content.
    pub fn load(e: &deberta_ner::Error, setting: &str) -> Self {
        use deberta_ner::Error as E;
        let mut failure = Self::engine(e);
        if matches!(e, E::Cancelled | E::ResourceLimit(_) | E::InvalidOption(_)) {
            return failure;
        }
        let what = match e {
            E::ModelNotFound { .. } | E::MissingFile { .. } => "a file it needs is missing",
            _ if permission_denied(e) => "the server may not read its files",
            E::BadFile { .. } => "one of its files is not valid",
            E::Unsupported(_) | E::Weight { .. } => "it is not a token classifier this engine can run",
            _ => "of an internal error",
        };
        failure.redacted = Some((
            format!("model \"{setting}\" cannot be loaded: {what}"),
            "The server log has the details; an administrator (or a role that may read server files) can read them.".into(),
        ));
        failure
    }

    /// Raises this failure, as `details` allow: without them, a redacted failure shows its
    /// redacted words and the full message goes to the server log only.
    pub fn raise(&self, details: bool, function: &'static str) -> ! {
        match &self.redacted {
            Some((message, hint)) if !details => {
                ErrorReport::new(PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION, format!("biomed_ner: {}", self.message), function)
                    .report(PgLogLevel::LOG_SERVER_ONLY);
                raise(self.code(), message.clone(), hint.clone(), function)
            }
            _ => raise(self.code(), self.message.clone(), self.hint.clone(), function),
        }
    }
}

/// Raises the engine's error `e` with the matching SQLSTATE.
pub fn raise_engine(e: deberta_ner::Error, function: &'static str) -> ! {
    Failure::engine(&e).raise(true, function)
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
    Failure::load(&e, setting).raise(details, function)
}
