//! The DeBERTa-v2/v3 encoder with a token-classification head, mirroring
//! `DebertaV2ForTokenClassification` of transformers 4.57 weight for weight.
//!
//! Differences in how (not what) it computes, all exact in real arithmetic:
//! - the relative-position projections (`key_proj`/`query_proj`, or `pos_key_proj`/
//!   `pos_query_proj`, of the normalised relative embeddings) do not depend on the input, so
//!   they are computed once at load, with the attention scale folded into the query side;
//! - a batch projects only the relative rows its length can reach ([`crate::relpos`]), once per
//!   layer for the whole batch, where transformers projects all `2 * span` rows per sequence;
//! - query, key and value are one matmul; the query is scaled instead of the key; heads are laid
//!   out `[heads, batch * len, head]` so that the content and relative matmuls share one copy;
//! - gather, bias, padding mask and softmax are one fused pass ([`crate::attention`]);
//! - the residual stream between layers (embeddings' and every layer's layer-norm output) is kept
//!   in f32 whatever the model's dtype, the classifier reads it in f32, and on CUDA each bias,
//!   activation, residual and layer norm tail is one kernel ([`crate::fused`]). In f32 every
//!   operation and its order are transformers'.

use candle_core::{CpuStorage, DType, Device, Module, Storage, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};

use crate::attention::{disentangled_softmax, AttentionPlan};
use crate::bmm::bmm;
use crate::config::{Activation, Config};
use crate::error::{Error, Result};
use crate::fused::{add_norm, bias_act, merge_heads, split_heads, NormParams, RowMap};
use crate::linear::{Bf16Linear, HostLinear, PackedLinear, QuantLinear};
use crate::Precision;
use crate::relpos::RelPos;

fn weight_error(vb: &VarBuilder, name: &str, e: candle_core::Error) -> Error {
    let full = if vb.prefix().is_empty() { name.to_string() } else { format!("{}.{name}", vb.prefix()) };
    let reason = match e {
        candle_core::Error::CannotFindTensor { .. } => "missing from the weights file".to_string(),
        e => e.to_string(),
    };
    Error::Weight { name: full, reason }
}

fn get(vb: &VarBuilder, shape: &[usize], name: &str) -> Result<Tensor> {
    vb.get(shape, name).map_err(|e| weight_error(vb, name, e))
}

fn linear(vb: &VarBuilder, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
    let w = get(vb, &[d_out, d_in], "weight")?;
    let b = if bias { Some(get(vb, &[d_out], "bias")?) } else { None };
    Ok(Linear::new(w, b))
}

fn layer_norm(vb: &VarBuilder, size: usize, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm::new(get(vb, &[size], "weight")?, get(vb, &[size], "bias")?, eps))
}

fn layer_norm_fwd(ln: &LayerNorm, x: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::layer_norm(x, ln.weight(), ln.bias().expect("layer norm has a bias"), ln.eps() as f32)?)
}

/// `x @ w^T` for `x` `[rows, in]`, `w` `[out, in]`.
fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    Ok(x.matmul(&w.t()?)?)
}

/// The weight of a projection inside a layer, without its bias: a tensor in the model's dtype
/// for candle's matmul, or packed by [`crate::linear`] for this crate's CPU kernels (f32 with
/// AVX-512F, bf16 with AVX-512 BF16, int8 for `Precision::Int8`).
enum Proj {
    Dense(Tensor),
    Host(Box<dyn HostLinear>),
}

impl Proj {
    /// From `w` `[out, in]`.
    fn new(w: Tensor, precision: Precision) -> Result<Self> {
        let cpu = w.device().is_cpu();
        let wanted = match precision {
            Precision::Int8 => true,
            Precision::F32 => cpu && crate::linear::f32::available(),
            // Read in f32 (`Precision::load_dtype`) and rounded to bf16 here.
            Precision::BF16 => cpu && w.dtype() == DType::F32 && crate::linear::bf16::available(),
            Precision::F16 => false,
        };
        if !wanted {
            return Ok(Self::Dense(w));
        }
        let (n, k) = w.dims2()?;
        let data = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let host: Option<Box<dyn HostLinear>> = match precision {
            Precision::Int8 => Some(Box::new(QuantLinear::new(&data, n, k))),
            Precision::BF16 => Bf16Linear::new(&data, n, k).map(|l| Box::new(l) as _),
            _ => PackedLinear::new(&data, n, k).map(|l| Box::new(l) as _),
        };
        Ok(host.map_or(Self::Dense(w), Self::Host))
    }

    /// `x @ w^T` for `x` `[rows, in]` (f32 for the packed kinds).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(w) => matmul_t(x, w),
            Self::Host(l) => host_forward(x, l.as_ref(), |x, rows| l.forward(x, rows)),
        }
    }

    /// `act(x @ w^T + bias)`; for the packed kinds with the exact GELU, the bias and activation
    /// are applied to each tile of the product while it is in cache.
    fn forward_act(&self, x: &Tensor, bias: &Tensor, act: Activation) -> Result<Tensor> {
        match self {
            Self::Host(l) if act == Activation::Gelu => {
                let bias = bias.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                host_forward(x, l.as_ref(), |x, rows| l.forward_bias_gelu(x, rows, &bias))
            }
            _ => bias_act(&self.forward(x)?, bias, act),
        }
    }
}

/// Runs `f` on the rows of `x` (a CPU tensor `[rows, l.in_features()]`, converted to f32) and
/// wraps its `[rows, l.out_features()]` result.
fn host_forward(x: &Tensor, l: &dyn HostLinear, f: impl FnOnce(&[f32], usize) -> Vec<f32>) -> Result<Tensor> {
    let (rows, k) = x.dims2()?;
    let x = x.to_dtype(DType::F32)?.contiguous()?;
    let (storage, layout) = x.storage_and_layout();
    let y = match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) if k == l.in_features() => f(&v[layout.start_offset()..][..rows * k], rows),
        _ => return Err(Error::InvalidOption("packed projections run on the CPU only".into())),
    };
    drop(storage);
    Ok(Tensor::from_vec(y, (rows, l.out_features()), x.device())?)
}

/// A projection's bias and the layer norm after it, for [`add_norm`].
fn norm_params(dense: &VarBuilder, norm: &VarBuilder, h: usize, eps: f64) -> Result<NormParams> {
    let (dense, norm) = (dense.clone().set_dtype(DType::F32), norm.clone().set_dtype(DType::F32));
    NormParams::new(&get(&dense, &[h], "bias")?, &get(&norm, &[h], "weight")?, &get(&norm, &[h], "bias")?, eps)
}

struct Embeddings {
    word: Embedding,
    position: Option<Embedding>,
    token_type_row0: Option<Tensor>,
    proj: Option<Linear>,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let e = cfg.embedding_size;
        let word = Embedding::new(get(&vb.pp("word_embeddings"), &[cfg.vocab_size, e], "weight")?, e);
        let position = if cfg.position_biased_input {
            let w = get(&vb.pp("position_embeddings"), &[cfg.max_position_embeddings, e], "weight")?;
            Some(Embedding::new(w, e))
        } else {
            None
        };
        // Token type ids are all 0 for single sentences.
        let token_type_row0 = if cfg.type_vocab_size > 0 {
            Some(get(&vb.pp("token_type_embeddings"), &[cfg.type_vocab_size, e], "weight")?.get(0)?)
        } else {
            None
        };
        let proj = if e != cfg.hidden_size {
            Some(linear(&vb.pp("embed_proj"), e, cfg.hidden_size, false)?)
        } else {
            None
        };
        let norm = layer_norm(&vb.pp("LayerNorm").set_dtype(DType::F32), cfg.hidden_size, cfg.layer_norm_eps)?;
        Ok(Self { word, position, token_type_row0, proj, norm })
    }

    /// The normalised embeddings, f32 `[batch * len, hidden]`.
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, len) = ids.dims2()?;
        let mut x = self.word.forward(ids)?;
        if let Some(pos) = &self.position {
            let pos_ids = Tensor::arange(0u32, len as u32, ids.device())?;
            x = x.broadcast_add(&pos.forward(&pos_ids)?)?;
        }
        if let Some(tt) = &self.token_type_row0 {
            x = x.broadcast_add(tt)?;
        }
        let mut x = x.reshape((b * len, x.dim(2)?))?;
        if let Some(proj) = &self.proj {
            x = proj.forward(&x)?;
        }
        layer_norm_fwd(&self.norm, &x.to_dtype(DType::F32)?)
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
    fn load(vb: VarBuilder, cfg: &Config, rel: Option<&Tensor>, scale: f64, precision: Precision) -> Result<Self> {
        let h = cfg.hidden_size;
        let att = vb.pp("attention");
        let sa = att.pp("self");
        let q = linear(&sa.pp("query_proj"), h, h, true)?;
        let k = linear(&sa.pp("key_proj"), h, h, true)?;
        let v = linear(&sa.pp("value_proj"), h, h, true)?;
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
                let l = if cfg.share_att_key { k.clone() } else { linear(&sa.pp("pos_key_proj"), h, h, true)? };
                pos_key = Some(to_heads(project(&l)?)?.to_dtype(q.weight().dtype())?);
            }
            if cfg.pos_att_type.p2c {
                let l = if cfg.share_att_key { q.clone() } else { linear(&sa.pp("pos_query_proj"), h, h, true)? };
                pos_query = Some(to_heads((project(&l)? / scale)?)?.to_dtype(q.weight().dtype())?);
            }
        }
        let qkv_w = Tensor::cat(&[q.weight(), k.weight(), v.weight()], 0)?;
        let qkv_b = Tensor::cat(&[q.bias().unwrap(), k.bias().unwrap(), v.bias().unwrap()], 0)?;
        let (ao, inter, out) = (att.pp("output"), vb.pp("intermediate").pp("dense"), vb.pp("output"));
        Ok(Self {
            qkv_w: Proj::new(qkv_w, precision)?,
            qkv_b,
            pos_key,
            pos_query,
            attn_out_w: Proj::new(get(&ao.pp("dense"), &[h, h], "weight")?, precision)?,
            attn_norm: norm_params(&ao.pp("dense"), &ao.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            intermediate_w: Proj::new(get(&inter, &[cfg.intermediate_size, h], "weight")?, precision)?,
            intermediate_b: get(&inter, &[cfg.intermediate_size], "bias")?,
            output_w: Proj::new(get(&out.pp("dense"), &[h, cfg.intermediate_size], "weight")?, precision)?,
            out_norm: norm_params(&out.pp("dense"), &out.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
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

/// A point of the forward pass, for [`DebertaTokenClassifier::forward_marked`]: each is reported
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

type Marker<'a> = dyn FnMut(Stage) -> Result<()> + 'a;

/// A loaded DeBERTa-v2/v3 token classifier.
pub struct DebertaTokenClassifier {
    cfg: Config,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    classifier: Linear,
    relpos: RelPos,
    /// `sqrt(head_size * scale_factor)`.
    scale: f64,
    device: Device,
    /// The dtype of the weights and of the activations between projections (f32 for int8).
    dtype: DType,
    precision: Precision,
}

impl DebertaTokenClassifier {
    /// Loads the weights under `vb` (the root of a `DebertaV2ForTokenClassification`
    /// checkpoint: `deberta.*` and `classifier.*`), read in `precision.dtype()`; with
    /// [`Precision::Int8`] the layers' projections are then quantised ([`crate::linear::int8`]).
    pub fn load(vb: VarBuilder, cfg: &Config, precision: Precision) -> Result<Self> {
        let h = cfg.hidden_size;
        let device = vb.device().clone();
        let dtype = vb.dtype();
        let int8 = precision == Precision::Int8;
        if int8 && !device.is_cpu() {
            return Err(Error::InvalidOption("dtype int8 runs on the CPU only (use f16 or bf16 on CUDA)".into()));
        }
        let deberta = vb.pp("deberta");
        let embeddings = Embeddings::load(deberta.pp("embeddings"), cfg)?;
        let scale_factor = 1 + cfg.pos_att_type.c2p as usize + cfg.pos_att_type.p2c as usize;
        // torch computes the scale in f32.
        let scale = ((cfg.head_size * scale_factor) as f32).sqrt() as f64;
        let encoder = deberta.pp("encoder");
        let span = cfg.att_span();
        let rel = if cfg.relative_attention {
            let table_rows = 2 * span;
            let enc_f32 = encoder.clone().set_dtype(DType::F32);
            let table = get(&enc_f32.pp("rel_embeddings"), &[table_rows, h], "weight")?;
            let table = if cfg.norm_rel_ebd {
                layer_norm_fwd(&layer_norm(&enc_f32.pp("LayerNorm"), h, cfg.layer_norm_eps)?, &table)?
            } else {
                table
            };
            Some(table)
        } else {
            None
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(encoder.pp("layer").pp(i), cfg, rel.as_ref(), scale, precision))
            .collect::<Result<Vec<_>>>()?;
        // In f32: it reads the f32 residual stream, and the labels' argmax is the output.
        let classifier = linear(&vb.pp("classifier").set_dtype(DType::F32), h, cfg.labels.len(), true)?;
        Ok(Self {
            cfg: cfg.clone(),
            embeddings,
            layers,
            classifier,
            relpos: RelPos::new(span, cfg.position_buckets, cfg.max_relative_positions),
            scale,
            device,
            dtype,
            precision,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype of the weights and activations (f32 for [`Precision::Int8`]).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// An upper estimate of the bytes a forward pass over `batch` sequences padded to `len`
    /// tokens allocates for its activations at its peak (one layer's live tensors): the
    /// hidden-size tensors (residual stream, q/k/v, context, feed-forward) and the attention
    /// tensors, which grow with the square of `len` (scores, gathered relative scores,
    /// probabilities) or with `len` times the relative span. Weights are not counted.
    pub fn pass_bytes(&self, batch: usize, len: usize) -> usize {
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

    /// Logits for a batch of token-id sequences (special tokens included), as one
    /// `len x labels` row-major f32 vector per sequence. Sequences are padded to the longest;
    /// padding never changes the logits of real tokens.
    pub fn forward(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        self.forward_checked(seqs, &mut || Ok(()))
    }

    /// [`Self::forward`], calling `check` before every layer; an error from it stops the pass
    /// (cancellation).
    pub fn forward_checked(&self, seqs: &[&[u32]], check: &mut dyn FnMut() -> Result<()>) -> Result<Vec<Vec<f32>>> {
        self.forward_marked(seqs, &mut |stage| if stage == Stage::LayerStart { check() } else { Ok(()) })
    }

    /// [`Self::forward`], calling `mark` at every [`Stage`] (for cancellation and profiling); an
    /// error from it stops the pass.
    pub fn forward_marked(&self, seqs: &[&[u32]], mark: &mut Marker) -> Result<Vec<Vec<f32>>> {
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
        let ids = Tensor::from_vec(ids, (b, len), &self.device)?;
        let (first_row, rows) = self.relpos.rows_for_len(len);
        let width = if self.cfg.relative_attention { *rows.iter().max().unwrap() as usize + 1 } else { 0 };
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
        let mut x = self.embeddings.forward(&ids)?;
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
