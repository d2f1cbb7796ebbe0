//! BERT and its family: `BertForTokenClassification`, `DistilBertForTokenClassification`,
//! `RobertaForTokenClassification`, `XLMRobertaForTokenClassification` and
//! `ElectraForTokenClassification` of transformers 4.57. All are the shared post-layer-norm
//! encoder with absolute position embeddings and plain scaled dot-product attention; they differ
//! in their weights' names and their embeddings:
//! - BERT and ELECTRA: positions `0..len`, token type 0 added; ELECTRA's embeddings may be
//!   narrower than its layers (`embedding_size`), projected to `hidden_size` after their layer
//!   norm (`electra.embeddings_project`, with a bias);
//! - RoBERTa and XLM-R: positions count from `pad_token_id + 1` and skip padding tokens, so a
//!   model with 514 positions reads at most 512 tokens (longer texts go in windows);
//! - DistilBERT: no token types, its own names and keys (`dim`, `n_layers`, ...).
//!
//! candle-transformers has ports of BERT, DistilBERT and XLM-R, but not for token
//! classification, without RoBERTa's position offset, and on candle's generic matmul and
//! softmax; this crate's encoder runs them on its own kernels instead (packed f32/bf16/int8
//! projections, fused layer norms, per-head products side by side, one-pass masked softmax),
//! checked against transformers (`tests/parity.rs`, fixtures from
//! `tests/fixtures/make_arch_fixtures.py`).

use candle_nn::VarBuilder;
use serde::Deserialize;

use super::encoder::{EmbeddingProjection, EncoderClassifier, Names};
use crate::config::{head_size, parse, Activation, Arch, Config, PosAttType};
use crate::error::{Error, Result};
use crate::Precision;

/// `config.json` of BERT, RoBERTa, XLM-R and ELECTRA.
#[derive(Debug, Deserialize)]
struct BertKeys {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "gelu")]
    hidden_act: String,
    #[serde(default = "positions_512")]
    max_position_embeddings: usize,
    #[serde(default = "two")]
    type_vocab_size: usize,
    #[serde(default = "eps_1e12")]
    layer_norm_eps: f64,
    #[serde(default)]
    pad_token_id: Option<usize>,
    #[serde(default)]
    embedding_size: Option<usize>,
    #[serde(default)]
    position_embedding_type: Option<String>,
    #[serde(default)]
    is_decoder: bool,
}

/// `config.json` of DistilBERT.
#[derive(Debug, Deserialize)]
struct DistilBertKeys {
    vocab_size: usize,
    dim: usize,
    n_layers: usize,
    n_heads: usize,
    hidden_dim: usize,
    #[serde(default = "gelu")]
    activation: String,
    #[serde(default = "positions_512")]
    max_position_embeddings: usize,
    #[serde(default)]
    pad_token_id: Option<usize>,
}

fn gelu() -> String {
    "gelu".into()
}
fn positions_512() -> usize {
    512
}
fn two() -> usize {
    2
}
fn eps_1e12() -> f64 {
    1e-12
}

/// The configuration of `arch` (any but DeBERTa); the caller reads its labels.
pub fn config(text: &str, arch: Arch) -> Result<Config> {
    let roberta_like = matches!(arch, Arch::Roberta | Arch::XlmRoberta);
    let base = |vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act| Config {
        arch,
        vocab_size,
        hidden_size,
        embedding_size: hidden_size,
        num_hidden_layers,
        num_attention_heads,
        head_size: head_size(hidden_size, num_attention_heads),
        intermediate_size,
        hidden_act,
        max_position_embeddings: 512,
        type_vocab_size: 0,
        layer_norm_eps: 1e-12,
        relative_attention: false,
        max_relative_positions: 0,
        position_buckets: 0,
        share_att_key: false,
        pos_att_type: PosAttType::default(),
        norm_rel_ebd: false,
        position_biased_input: true,
        positions_after_padding_idx: roberta_like,
        pad_token_id: 0,
        labels: Vec::new(),
    };
    if arch == Arch::DistilBert {
        let k: DistilBertKeys = parse(text)?;
        let act = Activation::parse(&k.activation)?;
        return Ok(Config {
            max_position_embeddings: k.max_position_embeddings,
            pad_token_id: k.pad_token_id.unwrap_or(0),
            ..base(k.vocab_size, k.dim, k.n_layers, k.n_heads, k.hidden_dim, act)
        });
    }
    let k: BertKeys = parse(text)?;
    match k.position_embedding_type.as_deref() {
        None | Some("absolute") => {}
        Some(other) => {
            return Err(Error::Unsupported(format!(
                "position_embedding_type \"{other}\" (only absolute position embeddings are supported)"
            )))
        }
    }
    if k.is_decoder {
        return Err(Error::Unsupported("is_decoder: a token classifier reads its whole input".into()));
    }
    let act = Activation::parse(&k.hidden_act)?;
    let embedding_size = match arch {
        // transformers' ElectraConfig default.
        Arch::Electra => k.embedding_size.unwrap_or(128),
        _ => k.hidden_size,
    };
    Ok(Config {
        embedding_size,
        max_position_embeddings: k.max_position_embeddings,
        type_vocab_size: k.type_vocab_size,
        layer_norm_eps: k.layer_norm_eps,
        pad_token_id: k.pad_token_id.unwrap_or(if roberta_like { 1 } else { 0 }),
        ..base(k.vocab_size, k.hidden_size, k.num_hidden_layers, k.num_attention_heads, k.intermediate_size, act)
    })
}

fn names(arch: Arch) -> Names {
    let root = arch.weight_prefix();
    if arch == Arch::DistilBert {
        return Names {
            embeddings: format!("{root}.embeddings"),
            embedding_projection: None,
            layers: format!("{root}.transformer.layer"),
            query: "attention.q_lin",
            key: "attention.k_lin",
            value: "attention.v_lin",
            attention_output: "attention.out_lin",
            attention_norm: "sa_layer_norm",
            intermediate: "ffn.lin1",
            output: "ffn.lin2",
            output_norm: "output_layer_norm",
            pos_key: "",
            pos_query: "",
        };
    }
    Names {
        embeddings: format!("{root}.embeddings"),
        embedding_projection: (arch == Arch::Electra).then(|| EmbeddingProjection {
            name: format!("{root}.embeddings_project"),
            bias: true,
            after_norm: true,
        }),
        layers: format!("{root}.encoder.layer"),
        query: "attention.self.query",
        key: "attention.self.key",
        value: "attention.self.value",
        attention_output: "attention.output.dense",
        attention_norm: "attention.output.LayerNorm",
        intermediate: "intermediate.dense",
        output: "output.dense",
        output_norm: "output.LayerNorm",
        pos_key: "",
        pos_query: "",
    }
}

/// Loads a `*ForTokenClassification` checkpoint of `cfg.arch`.
pub fn load(vb: VarBuilder, cfg: &Config, precision: Precision) -> Result<EncoderClassifier> {
    // torch computes the scale in f32.
    let scale = (cfg.head_size as f32).sqrt() as f64;
    EncoderClassifier::load(vb, cfg, &names(cfg.arch), None, scale, precision)
}

#[cfg(test)]
mod tests {
    use crate::config::{Arch, Config};

    fn bert(model_type: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut v = serde_json::json!({
            "model_type": model_type, "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 514,
            "id2label": {"0": "O", "1": "B-X", "2": "I-X"}
        });
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn reads_each_family() {
        let c = Config::from_json(&bert("bert", serde_json::json!({})).to_string()).unwrap();
        assert_eq!((c.arch, c.head_size, c.type_vocab_size, c.pad_token_id), (Arch::Bert, 8, 2, 0));
        assert_eq!(c.max_input_tokens(), Some(514));
        assert!(!c.relative_attention && c.position_biased_input && c.layer_norm_eps == 1e-12);
        let c = Config::from_json(&bert("roberta", serde_json::json!({"pad_token_id": 1})).to_string()).unwrap();
        assert_eq!(c.max_input_tokens(), Some(512), "positions start after the padding index");
        let c = Config::from_json(&bert("xlm-roberta", serde_json::json!({})).to_string()).unwrap();
        assert_eq!((c.arch, c.pad_token_id, c.first_position()), (Arch::XlmRoberta, 1, 2));
        let c = Config::from_json(&bert("electra", serde_json::json!({"embedding_size": 16})).to_string()).unwrap();
        assert_eq!((c.embedding_size, c.hidden_size), (16, 32));
        let d = serde_json::json!({
            "model_type": "distilbert", "vocab_size": 100, "dim": 32, "n_layers": 2, "n_heads": 4,
            "hidden_dim": 64, "activation": "relu", "id2label": {"0": "O"}
        });
        let c = Config::from_json(&d.to_string()).unwrap();
        assert_eq!((c.arch, c.hidden_size, c.intermediate_size, c.type_vocab_size), (Arch::DistilBert, 32, 64, 0));
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        let e = Config::from_json(&bert("bert", serde_json::json!({"position_embedding_type": "relative_key"})).to_string());
        assert!(e.unwrap_err().to_string().contains("relative_key"));
        let e = Config::from_json(&bert("bert", serde_json::json!({"num_attention_heads": 5})).to_string());
        assert!(e.unwrap_err().to_string().contains("multiple"));
        let e = Config::from_json(&bert("roberta", serde_json::json!({"hidden_act": "mish"})).to_string());
        assert!(e.unwrap_err().to_string().contains("mish"));
        let e = Config::from_json(&bert("bert", serde_json::json!({"is_decoder": true})).to_string());
        assert!(e.unwrap_err().to_string().contains("is_decoder"));
    }
}
