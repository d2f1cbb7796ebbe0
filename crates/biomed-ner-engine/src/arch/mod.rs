//! The models behind the pipeline, one module per architecture, chosen by `config.json`'s
//! `model_type`. The pipeline ([`crate::pipeline`]: tokenization and offsets, windows, batching,
//! aggregation) sees only [`TokenClassifier`]: logits for a batch of token-id sequences.
//!
//! - [`deberta`]: DeBERTa-v2/v3 (`deberta-v2`), with its disentangled relative attention;
//! - [`bert`]: BERT, DistilBERT, RoBERTa, XLM-RoBERTa and ELECTRA;
//! - [`encoder`]: the post-layer-norm encoder both are (its weights read by `weights`), built on the crate's kernels
//!   ([`crate::linear`], [`crate::fused`], [`crate::attention`], [`crate::bmm`], and their CUDA
//!   versions), so every architecture runs in f32, f16, bf16 and int8 on the CPU and on CUDA.

pub mod bert;
pub mod deberta;
pub mod encoder;
mod weights;

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

pub use encoder::{EncoderClassifier, Marker, Stage};

use crate::config::{labels_from_id2label, parse, Arch, Common, Config};
use crate::error::{Error, Result};
use crate::Precision;

/// Reading `config.json`: the keys every architecture shares, then the architecture's own
/// (here, where the architectures are known).
impl Config {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_json(&text).map_err(|e| match e {
            Error::BadFile { reason, .. } => Error::BadFile { path: path.to_path_buf(), reason },
            other => other,
        })
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let common: Common = parse(text)?;
        let model_type = common.model_type.as_deref().ok_or_else(|| Error::Unsupported("config.json has no model_type".into()))?;
        let arch = Arch::ALL.into_iter().find(|a| a.model_type() == model_type).ok_or_else(|| {
            let known: Vec<String> = Arch::ALL.iter().map(|a| format!("\"{}\"", a.model_type())).collect();
            Error::Unsupported(format!("model_type \"{model_type}\" (supported: {})", known.join(", ")))
        })?;
        let mut cfg = match arch {
            Arch::DebertaV2 => deberta::config(text)?,
            _ => bert::config(text, arch)?,
        };
        cfg.labels = labels_from_id2label(common.id2label)?;
        cfg.check()?;
        Ok(cfg)
    }

}

/// A token classifier: logits for every token of a padded batch.
pub trait TokenClassifier: Send + Sync {
    fn config(&self) -> &Config;

    fn device(&self) -> &Device;

    /// The dtype of the weights and activations (f32 for [`Precision::Int8`]).
    fn dtype(&self) -> DType;

    fn precision(&self) -> Precision;

    /// An upper estimate of the bytes a forward pass over `batch` sequences padded to `len`
    /// tokens allocates for its activations at its peak (one layer's live tensors). Weights are
    /// not counted.
    fn pass_bytes(&self, batch: usize, len: usize) -> usize;

    /// Logits for a batch of token-id sequences (special tokens included), as one
    /// `len x labels` row-major f32 vector per sequence, calling `mark` at every [`Stage`] (for
    /// cancellation and profiling); an error from it stops the pass. Sequences are padded to
    /// the longest; padding never changes the logits of real tokens.
    fn forward_marked(&self, seqs: &[&[u32]], mark: &mut Marker) -> Result<Vec<Vec<f32>>>;

    /// [`Self::forward_marked`] without marks.
    fn forward(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        self.forward_marked(seqs, &mut |_| Ok(()))
    }

    /// [`Self::forward_marked`], calling `check` before every layer; an error from it stops the
    /// pass (cancellation).
    fn forward_checked(&self, seqs: &[&[u32]], check: &mut dyn FnMut() -> Result<()>) -> Result<Vec<Vec<f32>>> {
        self.forward_marked(seqs, &mut |stage| if stage == Stage::LayerStart { check() } else { Ok(()) })
    }
}

/// Loads the model of `cfg.arch` from the checkpoint under `vb`.
pub fn load(vb: VarBuilder, cfg: &Config, precision: Precision) -> Result<Box<dyn TokenClassifier>> {
    let model = match cfg.arch {
        Arch::DebertaV2 => deberta::load(vb, cfg, precision)?,
        _ => bert::load(vb, cfg, precision)?,
    };
    Ok(Box::new(model))
}
