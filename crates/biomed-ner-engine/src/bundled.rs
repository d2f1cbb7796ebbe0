//! The default model, compiled into the binary: a compact DeBERTa-v3 trained on MACCROBAT by
//! `train/train.py` (see the README for its figures and licence).

use candle_core::Device;

use crate::error::Result;
use crate::pipeline::Pipeline;
use crate::Precision;

/// Name of the bundled model, as [`Pipeline::origin`] reports it (`bundled:NAME`).
pub const NAME: &str = "maccrobat-small";

static CONFIG: &str = include_str!("../../../models/maccrobat-small/config.json");
static TOKENIZER: &[u8] = include_bytes!("../../../models/maccrobat-small/tokenizer.json");
static WEIGHTS: &[u8] = include_bytes!("../../../models/maccrobat-small/model.safetensors");

/// Loads the bundled model.
pub fn load(precision: Precision, device: &Device) -> Result<Pipeline> {
    Pipeline::from_memory(CONFIG, TOKENIZER, WEIGHTS, &format!("bundled:{NAME}"), precision, device)
}
