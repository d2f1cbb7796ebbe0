//! The transformer encoder with a token-classification head that every architecture here is:
//! embeddings, post-layer-norm layers (self-attention, then feed-forward, each followed by
//! residual and layer norm) and a linear classifier, mirroring transformers 4.57's
//! `*ForTokenClassification` weight for weight. Architectures differ in their weights' names
//! ([`Names`]), their embeddings (absolute positions from 0 or after RoBERTa's padding index,
//! token types, a projection before or after the embeddings' layer norm) and DeBERTa's
//! disentangled relative attention, which the layers take when it is given.
//!
//! Differences in how (not what) it computes, all exact in real arithmetic:
//! - DeBERTa's relative-position projections (`key_proj`/`query_proj`, or `pos_key_proj`/
//!   `pos_query_proj`, of the normalised relative embeddings) do not depend on the input, so
//!   they are computed once at load, with the attention scale folded into the query side;
//! - a batch projects only the relative rows its length can reach ([`super::deberta::relpos`]), once per
//!   layer for the whole batch, where transformers projects all `2 * span` rows per sequence;
//! - query, key and value are one matmul; the query is scaled instead of the scores (as
//!   DeBERTa and DistilBERT do; BERT scales the scores, which rounds differently only in the
//!   last bits); heads are laid out `[heads, batch * len, head]` so that the content and
//!   relative matmuls share one copy;
//! - gather, bias, padding mask and softmax are one fused pass ([`crate::attention`]);
//! - the residual stream between layers (embeddings' and every layer's layer-norm output) is kept
//!   in f32 whatever the model's dtype, the classifier reads it in f32, and on CUDA each bias,
//!   activation, residual and layer norm tail is one kernel ([`crate::fused`]). In f32 every
//!   operation and its order are transformers'.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};

use super::deberta::relpos::RelPos;
use crate::attention::{disentangled_softmax, AttentionPlan};
use crate::bmm::bmm;
use crate::config::Config;
use super::TokenClassifier;
use crate::error::{Error, Result};
use crate::fused::{add_norm, merge_heads, split_heads, NormParams, RowMap};
use crate::Precision;
use super::weights::{get, layer_norm, layer_norm_fwd, linear, norm_params, Proj};

/// Where an architecture keeps its weights, relative to the checkpoint's root.
pub struct Names {
    /// The embeddings' folder (`deberta.embeddings`, `bert.embeddings`, ...).
    pub embeddings: String,
    /// The projection from `embedding_size` to `hidden_size`, read where they differ.
    pub embedding_projection: Option<EmbeddingProjection>,
    /// The layers' folder; layer `i` is under `{layers}.{i}`.
    pub layers: String,
    /// Inside a layer: query, key, value, attention output projection, its layer norm,
    /// intermediate projection, output projection, its layer norm.
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub attention_output: &'static str,
    pub attention_norm: &'static str,
    pub intermediate: &'static str,
    pub output: &'static str,
    pub output_norm: &'static str,
    /// DeBERTa's position projections when it does not share them with key and query
    /// (`share_att_key` false); read only with relative attention.
    pub pos_key: &'static str,
    pub pos_query: &'static str,
}

/// An architecture's projection from `embedding_size` to `hidden_size`.
pub struct EmbeddingProjection {
    /// Its weights' name, relative to the checkpoint's root.
    pub name: String,
    pub bias: bool,
    /// After the embeddings' layer norm (ELECTRA), or before it (DeBERTa, whose layer norm is
    /// then of `hidden_size`).
    pub after_norm: bool,
}

/// Absolute position embeddings and how a sequence's positions are counted.
struct Positions {
    table: Embedding,
    /// RoBERTa and XLM-R: the padding id, after which positions count, skipping padding tokens
    /// (transformers' `create_position_ids_from_input_ids`); `None`: `0..len`.
    after_padding: Option<u32>,
}

impl Positions {
    /// The position ids of the padded batch `ids` (`b x len`), `[len]` where every sequence has
    /// the same: `0..len`; for RoBERTa and XLM-R each non-padding token counts up from the
    /// padding id + 1, and padding tokens (a `<pad>` written in the text included) get the
    /// padding id.
    fn ids(&self, ids: &[u32], b: usize, len: usize, device: &Device) -> Result<Tensor> {
        let Some(pad) = self.after_padding else {
            return Ok(Tensor::arange(0u32, len as u32, device)?);
        };
        let mut positions = vec![pad; b * len];
        for (row, seq) in positions.chunks_mut(len).zip(ids.chunks(len)) {
            let mut n = pad;
            for (p, &id) in row.iter_mut().zip(seq) {
                if id != pad {
                    n += 1;
                    *p = n;
                }
            }
        }
        Ok(Tensor::from_vec(positions, (b, len), device)?)
    }
}

struct Embeddings {
    word: Embedding,
    position: Option<Positions>,
    token_type_row0: Option<Tensor>,
    proj: Option<Linear>,
    proj_after_norm: bool,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(root: &VarBuilder, names: &Names, cfg: &Config) -> Result<Self> {
        let e = cfg.embedding_size;
        let vb = root.pp(&names.embeddings);
        let word = Embedding::new(get(&vb.pp("word_embeddings"), &[cfg.vocab_size, e], "weight")?, e);
        let position = if cfg.position_biased_input {
            let w = get(&vb.pp("position_embeddings"), &[cfg.max_position_embeddings, e], "weight")?;
            let after_padding = cfg.positions_after_padding_idx.then_some(cfg.pad_token_id as u32);
            Some(Positions { table: Embedding::new(w, e), after_padding })
        } else {
            None
        };
        // Token type ids are all 0 for single sentences.
        let token_type_row0 = if cfg.type_vocab_size > 0 {
            Some(get(&vb.pp("token_type_embeddings"), &[cfg.type_vocab_size, e], "weight")?.get(0)?)
        } else {
            None
        };
        let (proj, proj_after_norm) = match &names.embedding_projection {
            Some(p) if e != cfg.hidden_size => (Some(linear(&root.pp(&p.name), e, cfg.hidden_size, p.bias)?), p.after_norm),
            _ => (None, false),
        };
        let norm_size = if proj_after_norm { e } else { cfg.hidden_size };
        let norm = layer_norm(&vb.pp("LayerNorm").set_dtype(DType::F32), norm_size, cfg.layer_norm_eps)?;
        Ok(Self { word, position, token_type_row0, proj, proj_after_norm, norm })
    }

    /// The embeddings of the padded batch `ids` (`b x len`, row-major), f32 `[b * len, hidden]`.
    fn forward(&self, ids: &[u32], b: usize, len: usize, device: &Device) -> Result<Tensor> {
        let mut x = self.word.forward(&Tensor::from_slice(ids, (b, len), device)?)?;
        if let Some(pos) = &self.position {
            x = x.broadcast_add(&pos.table.forward(&pos.ids(ids, b, len, device)?)?)?;
        }
        if let Some(tt) = &self.token_type_row0 {
            x = x.broadcast_add(tt)?;
        }
        let mut x = x.reshape((b * len, x.dim(2)?))?;
        match &self.proj {
            Some(proj) if self.proj_after_norm => {
                let x = layer_norm_fwd(&self.norm, &x.to_dtype(DType::F32)?)?;
                Ok(proj.forward(&x.to_dtype(proj.weight().dtype())?)?.to_dtype(DType::F32)?)
            }
            proj => {
                if let Some(proj) = proj {
                    x = proj.forward(&x)?;
                }
                layer_norm_fwd(&self.norm, &x.to_dtype(DType::F32)?)
            }
        }
    }
}

struct Layer {
    /// Query, key and value weights `[3 * hidden, hidden]` and biases.
    qkv_w: Proj,
    qkv_b: Tensor,
    /// Projected relative table for c2p, `[heads, 2*span, head]`.
    pos_key: Option<Tensor>,
    /// Projected relative table for p2c, scaled by `1/scale`, `[heads, 2*span, head]`.
    pos_query: Option<Tensor>,
    /// Attention output projection (its bias is in `attn_norm`).
    attn_out_w: Proj,
    attn_norm: NormParams,
    intermediate_w: Proj,
    intermediate_b: Tensor,
    /// Output projection (its bias is in `out_norm`).
    output_w: Proj,
    out_norm: NormParams,
}

/// Everything one batch's layers share.
struct BatchState {
    plan: AttentionPlan,
    /// First row of the relative table the batch reads.
    first_row: usize,
    /// `sqrt(head_size * scale_factor)`.
    scale: f64,
    /// Where the batch has padding and runs on the CPU in f32: the residual stream holds only
    /// the real rows, so the projections and the feed-forward (nine tenths of the work) skip the
    /// padding; only the attention runs on the padded layout.
    unpad: Option<Unpad>,
}

/// The real rows of a padded batch: `rows[t]` is the padded row of real row `t`.
struct Unpad {
    rows: Vec<u32>,
    index: Tensor,
}

impl Layer {
    fn load(
        vb: VarBuilder,
        names: &Names,
        cfg: &Config,
        rel: Option<&Tensor>,
        scale: f64,
        precision: Precision,
    ) -> Result<Self> {
        let h = cfg.hidden_size;
        let q = linear(&vb.pp(names.query), h, h, true)?;
        let k = linear(&vb.pp(names.key), h, h, true)?;
        let v = linear(&vb.pp(names.value), h, h, true)?;
        let (mut pos_key, mut pos_query) = (None, None);
        if let Some(rel) = rel {
            let to_heads = |t: Tensor| -> Result<Tensor> {
                let rows = t.dim(0)?;
                Ok(t.reshape((rows, cfg.num_attention_heads, cfg.head_size))?.transpose(0, 1)?.contiguous()?)
            };
            let project = |l: &Linear| -> Result<Tensor> {
                // In f32 whatever the model's dtype, then cast once.
                let w = l.weight().to_dtype(DType::F32)?;
                let b = l.bias().map(|b| b.to_dtype(DType::F32)).transpose()?;
                Ok(Linear::new(w, b).forward(rel)?)
            };
            if cfg.pos_att_type.c2p {
                let l = if cfg.share_att_key { k.clone() } else { linear(&vb.pp(names.pos_key), h, h, true)? };
                pos_key = Some(to_heads(project(&l)?)?.to_dtype(q.weight().dtype())?);
            }
            if cfg.pos_att_type.p2c {
                let l = if cfg.share_att_key { q.clone() } else { linear(&vb.pp(names.pos_query), h, h, true)? };
                pos_query = Some(to_heads((project(&l)? / scale)?)?.to_dtype(q.weight().dtype())?);
            }
        }
        let qkv_w = Tensor::cat(&[q.weight(), k.weight(), v.weight()], 0)?;
        let qkv_b = Tensor::cat(&[q.bias().unwrap(), k.bias().unwrap(), v.bias().unwrap()], 0)?;
        let (ao, inter, out) = (vb.pp(names.attention_output), vb.pp(names.intermediate), vb.pp(names.output));
        Ok(Self {
            qkv_w: Proj::new(qkv_w, precision)?,
            qkv_b,
            pos_key,
            pos_query,
            attn_out_w: Proj::new(get(&ao, &[h, h], "weight")?, precision)?,
            attn_norm: norm_params(&ao, &vb.pp(names.attention_norm), h, cfg.layer_norm_eps)?,
            intermediate_w: Proj::new(get(&inter, &[cfg.intermediate_size, h], "weight")?, precision)?,
            intermediate_b: get(&inter, &[cfg.intermediate_size], "bias")?,
            output_w: Proj::new(get(&out, &[h, cfg.intermediate_size], "weight")?, precision)?,
            out_norm: norm_params(&out, &vb.pp(names.output_norm), h, cfg.layer_norm_eps)?,
        })
    }

    /// One layer on the f32 residual stream `x` `[batch * len, hidden]` (or only its real rows,
    /// with [`BatchState::unpad`]); returns the next one.
    fn forward(&self, x: &Tensor, st: &BatchState, cfg: &Config, dtype: DType, mark: &mut Marker) -> Result<Tensor> {
        let (b, l) = (st.plan.batch, st.plan.len);
        let (heads, d) = (cfg.num_attention_heads, cfg.head_size);
        let xt = x.to_dtype(dtype)?;
        let qkv = self.qkv_w.forward(&xt)?; // [b*l, 3*hidden], without the bias
        mark(Stage::Qkv)?;
        // Each [heads, b*l, d], contiguous per head; the query scaled.
        let map = st.unpad.as_ref().map(|u| RowMap { padded: b * l, rows: &u.rows });
        let (q, k, v) = split_heads(&qkv, &self.qkv_b, heads, st.scale, map)?;
        mark(Stage::Split)?;
        let per_seq = |t: &Tensor| t.reshape((heads * b, l, d));
        let qk = bmm(&per_seq(&q)?, &per_seq(&k)?.t()?)?.reshape((heads, b, l, l))?;
        mark(Stage::ContentScores)?;
        let width = st.plan.width;
        let relative = |x: &Tensor, table: &Option<Tensor>| -> Result<Option<Tensor>> {
            // [heads, b*l, d] x [heads, d, width]
            table.as_ref().map(|t| bmm(x, &t.narrow(1, st.first_row, width)?.t()?)).transpose()
        };
        let c2p = relative(&q, &self.pos_key)?;
        let p2c = relative(&k, &self.pos_query)?;
        mark(Stage::RelativeScores)?;
        let probs = disentangled_softmax(&st.plan, &qk, c2p.as_ref(), p2c.as_ref())?; // [heads, b, l, l]
        mark(Stage::Softmax)?;
        let ctx = bmm(&probs.reshape((heads * b, l, l))?, &per_seq(&v)?)?; // [heads*b, l, d]
        let ctx = merge_heads(&ctx.reshape((heads, b * l, d))?)?; // [b*l, hidden]
        let ctx = match &st.unpad {
            Some(u) => ctx.index_select(&u.index, 0)?,
            None => ctx,
        };
        mark(Stage::Context)?;
        let x = add_norm(&self.attn_out_w.forward(&ctx)?, x, &self.attn_norm)?;
        mark(Stage::AttentionOutput)?;
        let xt = x.to_dtype(dtype)?;
        let inter = self.intermediate_w.forward_act(&xt, &self.intermediate_b, cfg.hidden_act)?;
        mark(Stage::Intermediate)?;
        let out = add_norm(&self.output_w.forward(&inter)?, &x, &self.out_norm)?;
        mark(Stage::Output)?;
        Ok(out)
    }
}

/// A point of the forward pass, for [`super::TokenClassifier::forward_marked`]: each is reported
/// when the work it names has been queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// About to run the next layer (the place to check for cancellation).
    LayerStart,
    Embeddings,
    /// The fused query/key/value projection.
    Qkv,
    /// Query, key and value split into heads.
    Split,
    /// Query-key scores.
    ContentScores,
    /// c2p and p2c projections onto the relative table.
    RelativeScores,
    /// Gathers, bias, mask and softmax.
    Softmax,
    /// Probabilities times values.
    Context,
    /// Attention output projection, residual and layer norm.
    AttentionOutput,
    /// Intermediate projection and activation.
    Intermediate,
    /// Output projection, residual and layer norm.
    Output,
    /// Classifier and the copy of the logits to the host.
    Classifier,
}

pub type Marker<'a> = dyn FnMut(Stage) -> Result<()> + 'a;

/// A loaded token classifier of any architecture here.
pub struct EncoderClassifier {
    cfg: Config,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    classifier: Linear,
    /// DeBERTa's relative positions, when its attention has them.
    relpos: Option<RelPos>,
    /// What attention scores are divided by: `sqrt(head_size)` (DeBERTa: times its
    /// `scale_factor`).
    scale: f64,
    device: Device,
    /// The dtype of the weights and of the activations between projections (f32 for int8).
    dtype: DType,
    precision: Precision,
}

/// DeBERTa's relative-position embeddings (layer-normalised when the model says so) and how
/// distances map to their rows.
pub struct Relative {
    pub table: Tensor,
    pub relpos: RelPos,
}

impl EncoderClassifier {
    /// Loads the weights under `vb` (the root of a `*ForTokenClassification` checkpoint: the
    /// encoder under `names` and `classifier.*`), read in `vb`'s dtype; with
    /// [`Precision::Int8`] the layers' projections are then quantised ([`crate::linear::int8`]).
    /// Attention scores are divided by `scale`.
    pub fn load(
        vb: VarBuilder,
        cfg: &Config,
        names: &Names,
        relative: Option<Relative>,
        scale: f64,
        precision: Precision,
    ) -> Result<Self> {
        let h = cfg.hidden_size;
        let device = vb.device().clone();
        let dtype = vb.dtype();
        if precision == Precision::Int8 && !device.is_cpu() {
            return Err(Error::InvalidOption("dtype int8 runs on the CPU only (use f16 or bf16 on CUDA)".into()));
        }
        let embeddings = Embeddings::load(&vb, names, cfg)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let table = relative.as_ref().map(|r| &r.table);
                Layer::load(vb.pp(&names.layers).pp(i), names, cfg, table, scale, precision)
            })
            .collect::<Result<Vec<_>>>()?;
        // In f32: it reads the f32 residual stream, and the labels' argmax is the output.
        let classifier = linear(&vb.pp("classifier").set_dtype(DType::F32), h, cfg.labels.len(), true)?;
        Ok(Self {
            cfg: cfg.clone(),
            embeddings,
            layers,
            classifier,
            relpos: relative.map(|r| r.relpos),
            scale,
            device,
            dtype,
            precision,
        })
    }
}

/// A relative table read in f32 under `vb` (`rel_embeddings`, and `LayerNorm` when `norm`).
pub fn relative_table(vb: &VarBuilder, rows: usize, h: usize, norm: Option<f64>) -> Result<Tensor> {
    let vb = vb.clone().set_dtype(DType::F32);
    let table = get(&vb.pp("rel_embeddings"), &[rows, h], "weight")?;
    match norm {
        Some(eps) => layer_norm_fwd(&layer_norm(&vb.pp("LayerNorm"), h, eps)?, &table),
        None => Ok(table),
    }
}

impl TokenClassifier for EncoderClassifier {
    fn config(&self) -> &Config {
        &self.cfg
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    /// The hidden-size tensors (residual stream, q/k/v, context, feed-forward) and the
    /// attention tensors, which grow with the square of `len` (scores, gathered relative scores,
    /// probabilities) or with `len` times the relative span.
    fn pass_bytes(&self, batch: usize, len: usize) -> usize {
        let c = &self.cfg;
        let elem = self.dtype.size_in_bytes().max(2);
        let rows = batch.saturating_mul(len);
        let width = if c.relative_attention { 2 * c.att_span().min(len.max(1)) } else { 0 };
        // f32 residual stream and layer-norm outputs, plus q, k, v, context in the model's dtype.
        let hidden = rows.saturating_mul(c.hidden_size).saturating_mul(4 * 4 + 5 * elem);
        let ffn = rows.saturating_mul(c.intermediate_size).saturating_mul(2 * elem);
        let heads = c.num_attention_heads.saturating_mul(rows);
        let attention = heads.saturating_mul(len.saturating_mul(4).saturating_add(2 * width)).saturating_mul(elem.max(4));
        hidden.saturating_add(ffn).saturating_add(attention)
    }

    fn forward_marked(&self, seqs: &[&[u32]], mark: &mut Marker) -> Result<Vec<Vec<f32>>> {
        let len = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        if seqs.is_empty() || len == 0 {
            return Ok(seqs.iter().map(|_| Vec::new()).collect());
        }
        if let Some(max) = self.cfg.max_input_tokens() {
            if len > max {
                return Err(Error::InvalidOption(format!(
                    "sequence of {len} tokens exceeds this model's max_position_embeddings {max}"
                )));
            }
        }
        let b = seqs.len();
        let mut ids = vec![self.cfg.pad_token_id as u32; b * len];
        for (i, s) in seqs.iter().enumerate() {
            if let Some(bad) = s.iter().find(|&&t| t as usize >= self.cfg.vocab_size) {
                return Err(Error::InvalidOption(format!(
                    "token id {bad} is outside the vocabulary of {} (tokenizer and model do not match)",
                    self.cfg.vocab_size
                )));
            }
            ids[i * len..i * len + s.len()].copy_from_slice(s);
        }
        let (first_row, rows, width) = match &self.relpos {
            Some(relpos) => {
                let (first_row, rows) = relpos.rows_for_len(len);
                let width = *rows.iter().max().unwrap() as usize + 1;
                (first_row, rows, width)
            }
            // No relative terms: the attention reads no table.
            None => (0, vec![0; 2 * len - 1], 0),
        };
        let real: usize = seqs.iter().map(|s| s.len()).sum();
        let unpad = if real < b * len && self.device.is_cpu() && self.dtype == DType::F32 {
            let rows: Vec<u32> =
                seqs.iter().enumerate().flat_map(|(i, s)| (0..s.len()).map(move |p| (i * len + p) as u32)).collect();
            let index = Tensor::from_slice(&rows, rows.len(), &self.device)?;
            Some(Unpad { rows, index })
        } else {
            None
        };
        let st = BatchState {
            plan: AttentionPlan::new(
                b,
                self.cfg.num_attention_heads,
                len,
                width,
                rows,
                seqs.iter().map(|s| s.len()).collect(),
            ),
            first_row,
            scale: self.scale,
            unpad,
        };
        let mut x = self.embeddings.forward(&ids, b, len, &self.device)?;
        if let Some(u) = &st.unpad {
            x = x.index_select(&u.index, 0)?;
        }
        mark(Stage::Embeddings)?;
        for layer in &self.layers {
            mark(Stage::LayerStart)?;
            x = layer.forward(&x, &st, &self.cfg, self.dtype, mark)?;
        }
        let logits = self.classifier.forward(&x)?;
        let n_labels = logits.dim(D::Minus1)?;
        let flat: Vec<f32> = logits.flatten_all()?.to_vec1()?;
        mark(Stage::Classifier)?;
        // Each sequence's first row: in the padded layout, or in the real rows.
        let mut real_start = 0;
        Ok(seqs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let at = if st.unpad.is_some() { real_start } else { i * len };
                real_start += s.len();
                flat[at * n_labels..(at + s.len()) * n_labels].to_vec()
            })
            .collect())
    }
}
