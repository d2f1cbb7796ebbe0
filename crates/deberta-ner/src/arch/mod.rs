//! The models behind the pipeline, one module per architecture, chosen by `config.json`'s
//! `model_type`. The pipeline ([`crate::pipeline`]: tokenization and offsets, windows, batching,
//! aggregation) sees only [`TokenClassifier`]: logits for a batch of token-id sequences.
//!
//! - [`deberta`]: DeBERTa-v2/v3 (`deberta-v2`), with its disentangled relative attention;
//! - [`bert`]: BERT, DistilBERT, RoBERTa, XLM-RoBERTa and ELECTRA;
//! - [`encoder`]: the post-layer-norm encoder both are, built on the crate's kernels
//!   ([`crate::linear`], [`crate::fused`], [`crate::attention`], [`crate::bmm`], and their CUDA
//!   versions), so every architecture runs in f32, f16, bf16 and int8 on the CPU and on CUDA.

pub mod bert;
pub mod deberta;
pub mod encoder;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

pub use encoder::{EncoderClassifier, Marker, Stage};

use crate::config::{Arch, Config};
use crate::error::Result;
use crate::Precision;

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
