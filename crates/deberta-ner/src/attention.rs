//! The attention probabilities of DeBERTa's disentangled attention, given the content scores
//! and the relative-position projections:
//!
//! `p[b,h,q,:] = softmax_k( qk[b,h,q,k] + c2p[h,b*L+q,r(q-k)] + p2c[h,b*L+k,r(q-k)] )`
//!
//! over the keys `k` of the sequence (padding keys get probability 0, padding query rows are
//! all 0), where `r` maps a distance to a row of the projected relative table
//! ([`crate::relpos::RelPos::rows_for_len`]). On CPU this is one fused pass
//! ([`DisentangledSoftmax`]); elsewhere it is built from candle's gather and softmax.

use candle_core::{backend::BackendStorage, CpuStorage, CustomOp3, DType, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::error::Result;

/// Shapes and lookup tables shared by every layer of one batch.
#[derive(Debug, Clone)]
pub struct AttentionPlan {
    pub batch: usize,
    pub heads: usize,
    pub len: usize,
    /// Rows of the relative table the batch reads.
    pub width: usize,
    /// Per distance `q - k` (at `q - k + len - 1`): the row in `0..width`.
    pub rows: Vec<u32>,
    /// Real (unpadded) length of each sequence.
    pub lens: Vec<usize>,
}

struct DisentangledSoftmax<'a> {
    plan: &'a AttentionPlan,
    use_c2p: bool,
    use_p2c: bool,
}

impl DisentangledSoftmax<'_> {
    fn run<T: WithDType>(&self, qk: &[T], c2p: &[T], p2c: &[T]) -> Vec<T> {
        let AttentionPlan { batch, heads, len, width, ref rows, ref lens } = *self.plan;
        let mut out = vec![T::zero(); batch * heads * len * len];
        out.par_chunks_mut(len * len).enumerate().for_each_init(
            || vec![0f32; len],
            |buf, (bh, block)| {
                let (b, h) = (bh / heads, bh % heads);
                let n = lens[b];
                for q in 0..n {
                    let qk_row = &qk[(bh * len + q) * len..][..n];
                    let c2p_row = if self.use_c2p { &c2p[(h * batch * len + b * len + q) * width..][..width] } else { &[] };
                    let mut max = f32::NEG_INFINITY;
                    for k in 0..n {
                        let r = rows[q + len - 1 - k] as usize;
                        let mut s = qk_row[k].to_f64() as f32;
                        if self.use_c2p {
                            s += c2p_row[r].to_f64() as f32;
                        }
                        if self.use_p2c {
                            s += p2c[(h * batch * len + b * len + k) * width + r].to_f64() as f32;
                        }
                        buf[k] = s;
                        max = max.max(s);
                    }
                    let mut sum = 0f32;
                    for v in &mut buf[..n] {
                        *v = (*v - max).exp();
                        sum += *v;
                    }
                    let inv = 1.0 / sum;
                    for (o, v) in block[q * len..][..n].iter_mut().zip(&buf[..n]) {
                        *o = T::from_f64((v * inv) as f64);
                    }
                }
            },
        );
        out
    }
}

fn contiguous_slice<'s, T: WithDType>(s: &'s CpuStorage, l: &Layout) -> candle_core::Result<&'s [T]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("disentangled softmax wants contiguous inputs".into()))?;
    Ok(&s.as_slice::<T>()?[start..end])
}

impl CustomOp3 for DisentangledSoftmax<'_> {
    fn name(&self) -> &'static str {
        "deberta-disentangled-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let p = self.plan;
        let shape = Shape::from((p.batch, p.heads, p.len, p.len));
        let storage = match s1.dtype() {
            DType::F32 => CpuStorage::F32(self.run(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                contiguous_slice(s3, l3)?,
            )),
            DType::F16 => CpuStorage::F16(self.run(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                contiguous_slice(s3, l3)?,
            )),
            DType::BF16 => CpuStorage::BF16(self.run(
                contiguous_slice(s1, l1)?,
                contiguous_slice(s2, l2)?,
                contiguous_slice(s3, l3)?,
            )),
            other => candle_core::bail!("disentangled softmax: unsupported dtype {other:?}"),
        };
        Ok((storage, shape))
    }
}

/// Attention probabilities `[batch, heads, len, len]` from the content scores `qk`
/// `[batch, heads, len, len]` and the relative terms `c2p`, `p2c` `[heads, batch*len, width]`
/// (either may be absent).
pub fn disentangled_softmax(
    plan: &AttentionPlan,
    qk: &Tensor,
    c2p: Option<&Tensor>,
    p2c: Option<&Tensor>,
) -> Result<Tensor> {
    if qk.device().is_cpu() {
        let op = DisentangledSoftmax { plan, use_c2p: c2p.is_some(), use_p2c: p2c.is_some() };
        let filler = c2p.or(p2c).unwrap_or(qk);
        let c2p = c2p.unwrap_or(filler).contiguous()?;
        let p2c = p2c.unwrap_or(filler).contiguous()?;
        Ok(qk.contiguous()?.apply_op3_no_bwd(&c2p, &p2c, &op)?)
    } else {
        disentangled_softmax_generic(plan, qk, c2p, p2c)
    }
}

/// The same computation from candle's generic ops: the path for non-CPU devices, and the
/// reference the fused CPU op is tested against.
pub fn disentangled_softmax_generic(
    plan: &AttentionPlan,
    qk: &Tensor,
    c2p: Option<&Tensor>,
    p2c: Option<&Tensor>,
) -> Result<Tensor> {
    let AttentionPlan { batch, heads, len, width, ref rows, ref lens } = *plan;
    let dev = qk.device();
    // index[q][k] = row of distance q - k; its transpose serves p2c, gathered per key row.
    let index: Vec<u32> = (0..len)
        .flat_map(|q| (0..len).map(move |k| (q, k)))
        .map(|(q, k)| rows[q + len - 1 - k])
        .collect();
    let index = Tensor::from_vec(index, (len, len), dev)?;
    let gather = |t: &Tensor, idx: &Tensor| -> Result<Tensor> {
        let idx = idx.broadcast_as((heads, batch, len, len))?.contiguous()?;
        Ok(t.reshape((heads, batch, len, width))?.gather(&idx, 3)?)
    };
    let mut scores = qk.to_dtype(DType::F32)?;
    if let Some(c2p) = c2p {
        let bias = gather(&c2p.to_dtype(DType::F32)?, &index)?.transpose(0, 1)?;
        scores = (scores + bias)?;
    }
    if let Some(p2c) = p2c {
        let bias = gather(&p2c.to_dtype(DType::F32)?, &index.t()?.contiguous()?)?
            .transpose(2, 3)?
            .transpose(0, 1)?;
        scores = (scores + bias)?;
    }
    // Key padding as -inf; padding query rows are zeroed afterwards, like the fused op.
    let mut key_mask = vec![0f32; batch * len];
    let mut row_keep = vec![0f32; batch * len];
    for (b, &n) in lens.iter().enumerate() {
        key_mask[b * len + n..(b + 1) * len].fill(f32::NEG_INFINITY);
        row_keep[b * len..b * len + n].fill(1.0);
    }
    let key_mask = Tensor::from_vec(key_mask, (batch, 1, 1, len), dev)?;
    let row_keep = Tensor::from_vec(row_keep, (batch, 1, len, 1), dev)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&key_mask)?)?;
    // A fully padded row is NaN after the softmax; multiply-by-zero would keep the NaN.
    let probs = row_keep
        .broadcast_as(probs.shape())?
        .ne(0f32)?
        .where_cond(&probs, &Tensor::zeros(probs.shape(), DType::F32, dev)?)?;
    Ok(probs.to_dtype(qk.dtype())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn fused_cpu_op_matches_generic_ops() {
        let (batch, heads, len, width) = (3, 2, 7, 9);
        let rp = crate::relpos::RelPos::new(4, 4, 16);
        let (_, rows) = rp.rows_for_len(len);
        assert!(rows.iter().all(|&r| (r as usize) < width));
        let plan = AttentionPlan { batch, heads, len, width, rows, lens: vec![7, 3, 1] };
        let dev = Device::Cpu;
        let qk = Tensor::randn(0f32, 1.0, (batch, heads, len, len), &dev).unwrap();
        let c2p = Tensor::randn(0f32, 1.0, (heads, batch * len, width), &dev).unwrap();
        let p2c = Tensor::randn(0f32, 1.0, (heads, batch * len, width), &dev).unwrap();
        for (c, p) in [(Some(&c2p), Some(&p2c)), (Some(&c2p), None), (None, Some(&p2c)), (None, None)] {
            let fused = disentangled_softmax(&plan, &qk, c, p).unwrap();
            let generic = disentangled_softmax_generic(&plan, &qk, c, p).unwrap();
            let diff = (fused - generic).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-6, "{diff}");
        }
    }
}
