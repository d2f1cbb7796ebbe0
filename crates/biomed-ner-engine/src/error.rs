//! The engine's error type. Every failure a user can cause (a missing file, an unsupported
//! configuration, a tensor of the wrong shape, bad input) has its own variant, so the
//! PostgreSQL layer can map it to a SQLSTATE and a hint.

use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// The model folder (or cache snapshot) does not exist.
    ModelNotFound { path: PathBuf },
    /// A required file is missing from an existing model folder.
    MissingFile { file: String, dir: PathBuf },
    /// A file exists but cannot be read or parsed.
    BadFile { path: PathBuf, reason: String },
    /// The model's configuration asks for something this engine does not implement.
    Unsupported(String),
    /// A weight tensor is missing or has the wrong shape.
    Weight { name: String, reason: String },
    /// An option passed by the caller is out of range.
    InvalidOption(String),
    /// The work asked for would exceed a resource limit set by the caller (a forward pass
    /// over the memory budget).
    ResourceLimit(String),
    /// Tokenization failed.
    Tokenizer(String),
    /// The caller's cancellation hook asked to stop.
    Cancelled,
    /// An error from the tensor library.
    Candle(candle_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::ModelNotFound { path } => {
                write!(f, "model folder \"{}\" does not exist", path.display())
            }
            Error::MissingFile { file, dir } => {
                write!(f, "model folder \"{}\" has no {}", dir.display(), file)
            }
            Error::BadFile { path, reason } => {
                write!(f, "cannot read \"{}\": {}", path.display(), reason)
            }
            Error::Unsupported(what) => write!(f, "unsupported model: {what}"),
            Error::Weight { name, reason } => write!(f, "weight \"{name}\": {reason}"),
            Error::InvalidOption(what) => write!(f, "invalid option: {what}"),
            Error::ResourceLimit(what) => write!(f, "{what}"),
            Error::Tokenizer(what) => write!(f, "tokenizer error: {what}"),
            Error::Cancelled => write!(f, "cancelled"),
            Error::Candle(e) => write!(f, "tensor error: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(e)
    }
}
