//! DeBERTa-v2/v3's `config.json` keys.

use serde::Deserialize;

use crate::config::{head_size, parse, Activation, Arch, Config, PosAttType};
use crate::error::{Error, Result};

#[derive(Debug, Deserialize)]
struct RawConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_max_pos")]
    max_position_embeddings: usize,
    #[serde(default)]
    type_vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    relative_attention: bool,
    #[serde(default = "default_minus_one")]
    max_relative_positions: i64,
    #[serde(default = "default_minus_one")]
    position_buckets: i64,
    #[serde(default)]
    share_att_key: bool,
    #[serde(default)]
    pos_att_type: Option<serde_json::Value>,
    #[serde(default)]
    norm_rel_ebd: Option<String>,
    #[serde(default = "default_true")]
    position_biased_input: bool,
    #[serde(default)]
    embedding_size: Option<usize>,
    #[serde(default)]
    conv_kernel_size: usize,
    #[serde(default)]
    pad_token_id: Option<usize>,
    #[serde(default)]
    attention_head_size: Option<usize>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_max_pos() -> usize {
    512
}
fn default_eps() -> f64 {
    1e-7
}
fn default_minus_one() -> i64 {
    -1
}
fn default_true() -> bool {
    true
}

/// DeBERTa's configuration; the caller reads its labels.
pub fn config(text: &str) -> Result<Config> {
    let raw: RawConfig = parse(text)?;
    let hidden_act = Activation::parse(&raw.hidden_act)?;
    if raw.conv_kernel_size > 0 {
        return Err(Error::Unsupported(format!(
            "conv_kernel_size {} (the convolution layer of DeBERTa-v2 xlarge)",
            raw.conv_kernel_size
        )));
    }
    let head_size = head_size(raw.hidden_size, raw.num_attention_heads);
    if let Some(h) = raw.attention_head_size {
        if h != head_size {
            return Err(Error::Unsupported(format!(
                "attention_head_size {h} differs from hidden_size / num_attention_heads"
            )));
        }
    }
    let pos_att_type = parse_pos_att_type(raw.pos_att_type.as_ref())?;
    let norm_rel_ebd = match raw.norm_rel_ebd.as_deref() {
        None | Some("none") | Some("") => false,
        Some(s) => {
            let parts: Vec<&str> = s.split('|').map(str::trim).collect();
            if parts.iter().any(|p| *p != "layer_norm" && *p != "none") {
                return Err(Error::Unsupported(format!("norm_rel_ebd \"{s}\"")));
            }
            parts.contains(&"layer_norm")
        }
    };
    let max_relative_positions = if raw.max_relative_positions < 1 {
        raw.max_position_embeddings
    } else {
        raw.max_relative_positions as usize
    };
    Ok(Config {
        arch: Arch::DebertaV2,
        vocab_size: raw.vocab_size,
        hidden_size: raw.hidden_size,
        embedding_size: raw.embedding_size.unwrap_or(raw.hidden_size),
        num_hidden_layers: raw.num_hidden_layers,
        num_attention_heads: raw.num_attention_heads,
        head_size,
        intermediate_size: raw.intermediate_size,
        hidden_act,
        max_position_embeddings: raw.max_position_embeddings,
        type_vocab_size: raw.type_vocab_size,
        layer_norm_eps: raw.layer_norm_eps,
        relative_attention: raw.relative_attention,
        max_relative_positions,
        position_buckets: raw.position_buckets.max(0) as usize,
        share_att_key: raw.share_att_key,
        pos_att_type,
        norm_rel_ebd,
        position_biased_input: raw.position_biased_input,
        positions_after_padding_idx: false,
        pad_token_id: raw.pad_token_id.unwrap_or(0),
        labels: Vec::new(),
    })
}

fn parse_pos_att_type(value: Option<&serde_json::Value>) -> Result<PosAttType> {
    let items: Vec<String> = match value {
        None | Some(serde_json::Value::Null) => vec![],
        Some(serde_json::Value::String(s)) => {
            s.split('|').map(|p| p.trim().to_lowercase()).filter(|p| !p.is_empty()).collect()
        }
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(|s| s.trim().to_lowercase()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::Unsupported(format!("pos_att_type {value:?}")))?,
        Some(other) => return Err(Error::Unsupported(format!("pos_att_type {other}"))),
    };
    let mut t = PosAttType::default();
    for item in items {
        match item.as_str() {
            "c2p" => t.c2p = true,
            "p2c" => t.p2c = true,
            "none" => {}
            other => return Err(Error::Unsupported(format!("pos_att_type \"{other}\""))),
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "model_type": "deberta-v2", "vocab_size": 100, "hidden_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
            "max_position_embeddings": 512, "relative_attention": true,
            "position_buckets": 256, "pos_att_type": ["p2c", "c2p"], "norm_rel_ebd": "layer_norm",
            "share_att_key": true, "position_biased_input": false, "type_vocab_size": 0,
            "id2label": {"0": "O", "1": "B-X", "2": "I-X"}
        })
    }

    #[test]
    fn reads_v3_base_options() {
        let c = Config::from_json(&base().to_string()).unwrap();
        assert_eq!(c.head_size, 8);
        assert_eq!(c.max_relative_positions, 512, "-1 means max_position_embeddings");
        assert_eq!(c.att_span(), 256);
        assert!(c.pos_att_type.c2p && c.pos_att_type.p2c && c.norm_rel_ebd);
        assert_eq!(c.labels, ["O", "B-X", "I-X"]);
        assert_eq!(c.max_input_tokens(), None);
    }

    #[test]
    fn pos_att_type_as_string() {
        let mut v = base();
        v["pos_att_type"] = "c2p|p2c".into();
        let c = Config::from_json(&v.to_string()).unwrap();
        assert!(c.pos_att_type.c2p && c.pos_att_type.p2c);
    }

    #[test]
    fn refuses_unsupported_options() {
        let mut v = base();
        v["conv_kernel_size"] = 3.into();
        assert!(Config::from_json(&v.to_string()).unwrap_err().to_string().contains("conv_kernel_size"));
        let mut v = base();
        v["hidden_act"] = "mish".into();
        assert!(Config::from_json(&v.to_string()).unwrap_err().to_string().contains("mish"));
        let mut v = base();
        v["id2label"] = serde_json::json!({"0": "O", "2": "B-X"});
        assert!(Config::from_json(&v.to_string()).is_err());
    }
}
