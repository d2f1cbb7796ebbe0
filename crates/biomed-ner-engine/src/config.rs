//! `config.json` of a Hugging Face token classifier, read with serde and validated once, so the
//! forward pass can trust every field. `model_type` chooses the architecture; each reads its
//! own keys (`Config::from_json`, in [`crate::arch`], which knows them) into the one
//! [`Config`] that the shared encoder runs: a post-layer-norm transformer encoder with absolute
//! and/or (DeBERTa's) relative positions.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The architecture, from `config.json`'s `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// `deberta-v2`: DeBERTa-v2 and v3.
    DebertaV2,
    Bert,
    DistilBert,
    Roberta,
    XlmRoberta,
    Electra,
}

impl Arch {
    /// Every architecture, in the order the README lists them.
    pub const ALL: [Arch; 6] = [Arch::DebertaV2, Arch::Bert, Arch::DistilBert, Arch::Roberta, Arch::XlmRoberta, Arch::Electra];

    /// The `model_type` of `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Arch::DebertaV2 => "deberta-v2",
            Arch::Bert => "bert",
            Arch::DistilBert => "distilbert",
            Arch::Roberta => "roberta",
            Arch::XlmRoberta => "xlm-roberta",
            Arch::Electra => "electra",
        }
    }

    /// The prefix of the encoder's weights in a `*ForTokenClassification` checkpoint.
    pub fn weight_prefix(self) -> &'static str {
        match self {
            Arch::DebertaV2 => "deberta",
            Arch::Bert => "bert",
            Arch::DistilBert => "distilbert",
            Arch::Roberta | Arch::XlmRoberta => "roberta",
            Arch::Electra => "electra",
        }
    }
}

/// Relative-position attention terms (`pos_att_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PosAttType {
    pub c2p: bool,
    pub p2c: bool,
}

/// Activation of the feed-forward block (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: the exact, erf-based GELU.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    Relu,
    Silu,
}

impl Activation {
    pub(crate) fn parse(name: &str) -> Result<Self> {
        match name {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            "silu" | "swish" => Ok(Activation::Silu),
            other => Err(Error::Unsupported(format!("hidden_act \"{other}\""))),
        }
    }
}

/// A validated configuration: the encoder's shape, its position scheme and the labels.
#[derive(Debug, Clone)]
pub struct Config {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub embedding_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub head_size: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    /// DeBERTa's disentangled attention; false for every other architecture.
    pub relative_attention: bool,
    /// `max_relative_positions`, with -1 (or any value below 1) resolved to
    /// `max_position_embeddings`, as transformers does.
    pub max_relative_positions: usize,
    /// `position_buckets`, 0 when log-bucketing is off.
    pub position_buckets: usize,
    pub share_att_key: bool,
    pub pos_att_type: PosAttType,
    pub norm_rel_ebd: bool,
    /// Absolute position embeddings added to the input (every architecture but DeBERTa-v3).
    pub position_biased_input: bool,
    /// RoBERTa and XLM-R: positions count the non-padding tokens from `pad_token_id + 1`
    /// (transformers' `create_position_ids_from_input_ids`); elsewhere they are `0..len`.
    pub positions_after_padding_idx: bool,
    pub pad_token_id: usize,
    /// Labels in id order.
    pub labels: Vec<String>,
}

/// The keys every architecture's reader looks at first.
#[derive(Debug, Deserialize)]
pub(crate) struct Common {
    pub(crate) model_type: Option<String>,
    #[serde(default)]
    pub(crate) id2label: Option<BTreeMap<String, String>>,
}

impl Config {
    /// Checks what the forward pass relies on (after an architecture read its keys).
    pub(crate) fn check(&self) -> Result<()> {
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            return Err(Error::Unsupported(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if self.num_hidden_layers == 0
            || self.vocab_size == 0
            || self.intermediate_size == 0
            || self.hidden_size == 0
            || self.embedding_size == 0
        {
            return Err(Error::Unsupported(
                "a model needs layers, a vocabulary, and hidden, embedding and feed-forward sizes above 0".into(),
            ));
        }
        if self.pad_token_id >= self.vocab_size {
            return Err(Error::Unsupported(format!(
                "pad_token_id {} is outside the vocabulary of {}",
                self.pad_token_id, self.vocab_size
            )));
        }
        if self.position_biased_input && self.max_input_tokens() == Some(0) {
            return Err(Error::Unsupported(format!("max_position_embeddings {} leaves no positions", self.max_position_embeddings)));
        }
        Ok(())
    }

    /// Half the number of rows of the relative-position embedding table, `att_span` in
    /// transformers: the bucket count when log-bucketing is on, else `max_relative_positions`.
    pub fn att_span(&self) -> usize {
        if self.position_buckets > 0 {
            self.position_buckets
        } else {
            self.max_relative_positions
        }
    }

    /// The first absolute position id (RoBERTa's `pad_token_id + 1`).
    pub fn first_position(&self) -> usize {
        if self.positions_after_padding_idx {
            self.pad_token_id + 1
        } else {
            0
        }
    }

    /// The longest input, special tokens included, that the model accepts (none when
    /// positions are only relative).
    pub fn max_input_tokens(&self) -> Option<usize> {
        self.position_biased_input.then(|| self.max_position_embeddings.saturating_sub(self.first_position()))
    }
}

/// `text` as the configuration struct `T` of one architecture.
pub(crate) fn parse<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::BadFile { path: "config.json".into(), reason: e.to_string() })
}

/// `head_size` from the hidden size and heads, which [`Config::check`] validates later.
pub(crate) fn head_size(hidden: usize, heads: usize) -> usize {
    hidden.checked_div(heads).unwrap_or(0)
}

pub(crate) fn labels_from_id2label(id2label: Option<BTreeMap<String, String>>) -> Result<Vec<String>> {
    let map = id2label
        .filter(|m| !m.is_empty())
        .ok_or_else(|| Error::Unsupported("config.json has no id2label".into()))?;
    let mut labels = vec![None; map.len()];
    for (id, label) in map {
        let i: usize = id
            .parse()
            .ok()
            .filter(|i| *i < labels.len())
            .ok_or_else(|| Error::Unsupported(format!("id2label key \"{id}\" is not a label id")))?;
        labels[i] = Some(label);
    }
    labels
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::Unsupported("id2label ids are not 0..n".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unknown_model_types_and_bad_labels() {
        let e = Config::from_json(r#"{"model_type": "gpt2", "id2label": {"0": "O"}}"#).unwrap_err().to_string();
        assert!(e.contains("model_type \"gpt2\"") && e.contains("\"bert\""), "{e}");
        assert!(Config::from_json(r#"{"id2label": {"0": "O"}}"#).unwrap_err().to_string().contains("no model_type"));
        let bert = r#""model_type": "bert", "vocab_size": 9, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16"#;
        let e = Config::from_json(&format!(r#"{{{bert}, "id2label": {{"0": "O", "2": "B-X"}}}}"#)).unwrap_err();
        assert!(e.to_string().contains("not a label id"), "{e}");
        let e = Config::from_json(&format!(r#"{{{bert}, "pad_token_id": 9, "id2label": {{"0": "O"}}}}"#)).unwrap_err();
        assert!(e.to_string().contains("pad_token_id 9"), "{e}");
        let e = Config::from_json(&format!(r#"{{{bert}, "embedding_size": 0, "id2label": {{"0": "O"}}}}"#));
        assert!(e.is_ok(), "only ELECTRA reads embedding_size");
        let electra = bert.replace("\"bert\"", "\"electra\"");
        let e = Config::from_json(&format!(r#"{{{electra}, "embedding_size": 0, "id2label": {{"0": "O"}}}}"#)).unwrap_err();
        assert!(e.to_string().contains("above 0"), "{e}");
        // The architecture's keys are read before the labels.
        let e = Config::from_json(r#"{"model_type": "bert", "hidden_size": "SECRET"}"#).unwrap_err();
        assert!(e.to_string().contains("SECRET"), "{e}");
    }
}
