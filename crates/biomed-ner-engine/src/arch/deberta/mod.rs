//! DeBERTa-v2/v3 (`DebertaV2ForTokenClassification`): the shared encoder with absolute positions
//! optional and DeBERTa's disentangled attention, whose relative terms (c2p, p2c) read a
//! layer-normalised table of relative embeddings through log buckets ([`relpos`]). Its
//! gather-and-softmax kernel is [`crate::attention`] (CPU and CUDA).

mod config;
pub mod relpos;

pub use config::config;

use candle_nn::VarBuilder;

use super::encoder::{relative_table, EmbeddingProjection, EncoderClassifier, Names, Relative};
use crate::config::{Arch, Config};
use crate::error::Result;
use crate::Precision;
use relpos::RelPos;

fn names() -> Names {
    let root = Arch::DebertaV2.weight_prefix();
    Names {
        embeddings: format!("{root}.embeddings"),
        embedding_projection: Some(EmbeddingProjection {
            name: format!("{root}.embeddings.embed_proj"),
            bias: false,
            after_norm: false,
        }),
        layers: format!("{root}.encoder.layer"),
        query: "attention.self.query_proj",
        key: "attention.self.key_proj",
        value: "attention.self.value_proj",
        attention_output: "attention.output.dense",
        attention_norm: "attention.output.LayerNorm",
        intermediate: "intermediate.dense",
        output: "output.dense",
        output_norm: "output.LayerNorm",
        pos_key: "attention.self.pos_key_proj",
        pos_query: "attention.self.pos_query_proj",
    }
}

/// Loads a `DebertaV2ForTokenClassification` checkpoint (`deberta.*`, `classifier.*`).
pub fn load(vb: VarBuilder, cfg: &Config, precision: Precision) -> Result<EncoderClassifier> {
    let scale_factor = 1 + cfg.pos_att_type.c2p as usize + cfg.pos_att_type.p2c as usize;
    let relative = if cfg.relative_attention {
        let span = cfg.att_span();
        let norm = cfg.norm_rel_ebd.then_some(cfg.layer_norm_eps);
        Some(Relative {
            table: relative_table(&vb.pp(Arch::DebertaV2.weight_prefix()).pp("encoder"), 2 * span, cfg.hidden_size, norm)?,
            relpos: RelPos::new(span, cfg.position_buckets, cfg.max_relative_positions),
        })
    } else {
        None
    };
    // torch computes the scale in f32.
    let scale = ((cfg.head_size * scale_factor) as f32).sqrt() as f64;
    EncoderClassifier::load(vb, cfg, &names(), relative, scale, precision)
}
