//! Errors as PostgreSQL will see them, as plain data: a SQLSTATE, a message and a hint. The
//! model process classifies an engine error here and sends it to the backend, which raises it
//! (the extension maps [`SqlState`] to its error code in one function).

use biomed_ner_engine::Error as E;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A SQLSTATE: five characters of `0-9A-Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqlState(pub [u8; 5]);

impl SqlState {
    pub const SUCCESSFUL_COMPLETION: Self = Self(*b"00000");
    pub const DATA_EXCEPTION: Self = Self(*b"22000");
    pub const INVALID_PARAMETER_VALUE: Self = Self(*b"22023");
    pub const INSUFFICIENT_PRIVILEGE: Self = Self(*b"42501");
    pub const INSUFFICIENT_RESOURCES: Self = Self(*b"53000");
    pub const PROGRAM_LIMIT_EXCEEDED: Self = Self(*b"54000");
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: Self = Self(*b"55000");
    pub const QUERY_CANCELED: Self = Self(*b"57014");
    pub const UNDEFINED_FILE: Self = Self(*b"58P01");
    pub const FEATURE_NOT_SUPPORTED: Self = Self(*b"0A000");
    pub const CONFIG_FILE_ERROR: Self = Self(*b"F0000");
    pub const INTERNAL_ERROR: Self = Self(*b"XX000");

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("XX000")
    }

    /// PostgreSQL's packed form (`MAKE_SQLSTATE`: six bits a character, the first lowest).
    pub fn packed(self) -> i32 {
        self.0.iter().enumerate().map(|(i, c)| ((c.wrapping_sub(b'0') & 0x3F) as i32) << (6 * i)).sum()
    }

    /// The SQLSTATE of PostgreSQL's packed form.
    pub fn from_packed(packed: i32) -> Self {
        Self(std::array::from_fn(|i| ((packed >> (6 * i)) & 0x3F) as u8 + b'0'))
    }
}

/// On the wire (and in the service's status) a SQLSTATE is PostgreSQL's packed integer, as
/// it has always been there.
impl Serialize for SqlState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.packed())
    }
}

impl<'de> Deserialize<'de> for SqlState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        i32::deserialize(d).map(Self::from_packed)
    }
}

/// An error to raise: SQLSTATE, message and hint. `redacted` is what a role that may not read
/// server files sees instead (errors of loading a model quote paths and file content).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub code: SqlState,
    pub message: String,
    pub hint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<(String, String)>,
}

/// The hint of a bug of biomed_ner.
pub const BUG_HINT: &str = "This is a bug in biomed_ner; please report it with the input that caused it.";

impl Failure {
    pub fn new(code: SqlState, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self { code, message: message.into(), hint: hint.into(), redacted: None }
    }

    /// An internal error (a bug).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(SqlState::INTERNAL_ERROR, message, BUG_HINT)
    }

    /// The engine's error `e` with its SQLSTATE and hint.
    pub fn engine(e: &E) -> Self {
        let model_hint = "Set biomed_ner.model to a folder with config.json, a tokenizer (tokenizer.json, vocab.txt, spm.model or sentencepiece.bpe.model) and \
                          model.safetensors (or pytorch_model.bin) that the server can read, or to '' for the bundled model.";
        let (code, hint): (SqlState, &str) = match e {
            E::ModelNotFound { .. } | E::MissingFile { .. } => (SqlState::UNDEFINED_FILE, model_hint),
            _ if permission_denied(e) => (
                SqlState::INSUFFICIENT_PRIVILEGE,
                "The server runs as its own operating-system user: give it read access to the model folder and its files.",
            ),
            E::BadFile { .. } | E::Unsupported(_) | E::Weight { .. } => (
                SqlState::CONFIG_FILE_ERROR,
                "The model folder must hold a token classifier saved by transformers (DeBERTa-v2/v3, BERT, DistilBERT, RoBERTa, XLM-RoBERTa or ELECTRA); check biomed_ner.model.",
            ),
            E::InvalidOption(_) => {
                (SqlState::INVALID_PARAMETER_VALUE, "Check biomed_ner.max_length, biomed_ner.stride and biomed_ner.batch_size.")
            }
            E::ResourceLimit(_) => (
                SqlState::PROGRAM_LIMIT_EXCEEDED,
                "Lower biomed_ner.max_length (shorter windows), or ask an administrator to raise biomed_ner.max_memory.",
            ),
            E::Tokenizer(_) => (SqlState::DATA_EXCEPTION, "The tokenizer could not encode this text."),
            E::Cancelled => (SqlState::QUERY_CANCELED, "The query was cancelled."),
            E::Candle(_) => (
                SqlState::INTERNAL_ERROR,
                "This is a bug in biomed_ner or a model it cannot run; please report it with the model's config.json.",
            ),
        };
        Self::new(code, e.to_string(), hint)
    }

    /// An error of loading the model `setting` (the value of `biomed_ner.model`), with the
    /// words a role that may not read server files sees instead: the kind of failure and the
    /// SQLSTATE, not the paths and file content.
    pub fn load(e: &E, setting: &str) -> Self {
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
}

/// Whether `e` is the operating system refusing the server a model file or folder.
fn permission_denied(e: &E) -> bool {
    matches!(e, E::BadFile { reason, .. } if reason.contains("ermission denied"))
}

/// The text of a panic's payload.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_pack_as_postgresql_does() {
        // ERRCODE_INVALID_PARAMETER_VALUE and ERRCODE_UNDEFINED_FILE as pgrx defines them.
        assert_eq!(SqlState::INVALID_PARAMETER_VALUE.packed(), 2 | 2 << 6 | 0 << 12 | 2 << 18 | 3 << 24);
        for s in [SqlState::UNDEFINED_FILE, SqlState::CONFIG_FILE_ERROR, SqlState::FEATURE_NOT_SUPPORTED] {
            assert_eq!(SqlState::from_packed(s.packed()), s);
        }
        let f = Failure::new(SqlState::UNDEFINED_FILE, "m", "h");
        let back: Failure = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }
}
