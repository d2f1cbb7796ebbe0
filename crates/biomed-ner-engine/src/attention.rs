//! The attention probabilities of DeBERTa's disentangled attention, given the content scores
//! and the relative-position projections:
//!
//! `p[h,b,q,:] = softmax_k( qk[h,b,q,k] + c2p[h,b*L+q,r(q-k)] + p2c[h,b*L+k,r(q-k)] )`
//!
//! over the keys `k` of the sequence (padding keys get probability 0, padding query rows are
//! all 0), where `r` maps a distance to a row of the projected relative table
//! ([`crate::arch::deberta::relpos::RelPos::rows_for_len`]). On CPU this is one fused rayon pass and, with
//! the `cuda` feature, one CUDA kernel (`src/cuda/attention.cu`, compiled to PTX at build time):
//! both are [`DisentangledSoftmax`]. Elsewhere it is built from candle's gather and softmax.

use candle_core::{backend::BackendStorage, CpuStorage, CustomOp3, DType, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::error::Result;

/// Shapes and lookup tables shared by every layer of one batch.
#[derive(Debug)]
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
    /// `rows` and `lens` on the GPU, uploaded by the first layer that needs them.
    #[cfg(feature = "cuda")]
    device_tables: std::sync::OnceLock<cuda::Tables>,
}

impl AttentionPlan {
    pub fn new(batch: usize, heads: usize, len: usize, width: usize, rows: Vec<u32>, lens: Vec<usize>) -> Self {
        Self {
            batch,
            heads,
            len,
            width,
            rows,
            lens,
            #[cfg(feature = "cuda")]
            device_tables: std::sync::OnceLock::new(),
        }
    }
}

/// Longest row the warp-per-row CUDA kernel takes (its block keeps 8 rows of scores in 32 KiB of
/// shared memory); longer rows use the block-per-row kernel.
pub const CUDA_WARP_MAX_LEN: usize = 1024;

/// How the CUDA kernel is launched (it computes the same either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CudaKernel {
    /// One warp per query row, several rows per block.
    Warp,
    /// One block per query row.
    Block,
}

impl CudaKernel {
    /// Warp per row up to [`CUDA_WARP_MAX_LEN`] keys, block per row beyond. The environment
    /// variable `BIOMED_NER_CUDA_SOFTMAX=warp|block` overrides it (for benchmarks).
    pub fn for_len(len: usize) -> Self {
        static FORCED: std::sync::OnceLock<Option<CudaKernel>> = std::sync::OnceLock::new();
        let forced = *FORCED.get_or_init(|| match std::env::var("BIOMED_NER_CUDA_SOFTMAX").as_deref() {
            Ok("warp") => Some(CudaKernel::Warp),
            Ok("block") => Some(CudaKernel::Block),
            _ => None,
        });
        match forced {
            Some(CudaKernel::Block) => CudaKernel::Block,
            _ if len <= CUDA_WARP_MAX_LEN => CudaKernel::Warp,
            _ => CudaKernel::Block,
        }
    }
}

struct DisentangledSoftmax<'a> {
    plan: &'a AttentionPlan,
    use_c2p: bool,
    use_p2c: bool,
    /// The CUDA kernel's launch shape; `None`: [`CudaKernel::for_len`].
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    cuda_kernel: Option<CudaKernel>,
}

impl DisentangledSoftmax<'_> {
    fn run<T: WithDType>(&self, qk: &[T], c2p: &[T], p2c: &[T]) -> Vec<T> {
        let AttentionPlan { batch, heads, len, width, ref rows, ref lens, .. } = *self.plan;
        let mut out = vec![T::zero(); batch * heads * len * len];
        out.par_chunks_mut(len * len).enumerate().for_each_init(
            || vec![0f32; len],
            |buf, (hb, block)| {
                let (h, b) = (hb / batch, hb % batch);
                let n = lens[b];
                for q in 0..n {
                    let qk_row = &qk[(hb * len + q) * len..][..n];
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
                    let inv = 1.0 / crate::vector::exp_sum(&mut buf[..n], max);
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
        let shape = Shape::from((p.heads, p.batch, p.len, p.len));
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let p = self.plan;
        let inputs = [(s1, l1), (s2, l2), (s3, l3)];
        let kernel = self.cuda_kernel.unwrap_or_else(|| CudaKernel::for_len(p.len));
        let storage = match s1.dtype() {
            DType::F32 => cuda::launch::<f32>(self, kernel, "f32", inputs)?,
            DType::F16 => cuda::launch::<half::f16>(self, kernel, "f16", inputs)?,
            DType::BF16 => cuda::launch::<half::bf16>(self, kernel, "bf16", inputs)?,
            other => candle_core::bail!("disentangled softmax: unsupported dtype {other:?}"),
        };
        Ok((storage, Shape::from((p.heads, p.batch, p.len, p.len))))
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    //! Launches `src/cuda/attention.cu`.
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, WrapErr};
    use candle_core::{CudaStorage, Layout};

    use super::{AttentionPlan, CudaKernel as Kernel, DisentangledSoftmax, CUDA_WARP_MAX_LEN as WARP_MAX_LEN};

    const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/attention.ptx"));
    const MODULE: &str = "biomed_ner_engine_attention";
    /// Threads per block of the block-per-row kernel.
    const THREADS: u32 = 128;
    /// Rows (warps) per block of the warp-per-row kernel.
    const WARPS: usize = 8;
    /// An [`AttentionPlan`]'s `rows` and `lens` (as u32) on the device.
    #[derive(Debug)]
    pub struct Tables {
        rows: CudaSlice<u32>,
        lens: CudaSlice<u32>,
    }

    /// Longest sequence the kernel takes: its scores live in the block's shared memory
    /// (48 KiB without opting in to more).
    pub const MAX_LEN: usize = 48 * 1024 / 4 - 32;

    pub fn launch<T: CudaDType + DeviceRepr>(
        op: &DisentangledSoftmax<'_>,
        kernel: Kernel,
        suffix: &str,
        inputs: [(&CudaStorage, &Layout); 3],
    ) -> candle_core::Result<CudaStorage> {
        let AttentionPlan { batch, heads, len, width, ref rows, ref lens, ref device_tables } = *op.plan;
        let limit = if kernel == Kernel::Warp { WARP_MAX_LEN } else { MAX_LEN };
        if len > limit {
            candle_core::bail!("disentangled softmax: {len} tokens exceed the {kernel:?} CUDA kernel's {limit}");
        }
        let dev = inputs[0].0.device().clone();
        let mut views = Vec::with_capacity(3);
        for (s, l) in inputs {
            let (a, b) = l
                .contiguous_offsets()
                .ok_or_else(|| candle_core::Error::Msg("disentangled softmax wants contiguous inputs".into()))?;
            views.push(s.as_cuda_slice::<T>()?.slice(a..b));
        }
        let tables = match device_tables.get() {
            Some(t) => t,
            None => {
                let lens: Vec<u32> = lens.iter().map(|&n| n as u32).collect();
                let t = Tables { rows: dev.clone_htod(rows.as_slice())?, lens: dev.clone_htod(lens.as_slice())? };
                device_tables.get_or_init(|| t)
            }
        };
        let rows_total = batch * heads * len;
        let (name, cfg) = match kernel {
            Kernel::Warp => (
                "warp",
                LaunchConfig {
                    grid_dim: (rows_total.div_ceil(WARPS) as u32, 1, 1),
                    block_dim: ((WARPS * 32) as u32, 1, 1),
                    shared_mem_bytes: (WARPS * len * 4) as u32,
                },
            ),
            Kernel::Block => (
                "block",
                LaunchConfig {
                    grid_dim: (rows_total as u32, 1, 1),
                    block_dim: (THREADS, 1, 1),
                    shared_mem_bytes: ((len + 32) * 4) as u32,
                },
            ),
        };
        let func = dev.get_or_load_custom_func(&format!("disentangled_softmax_{name}_{suffix}"), MODULE, PTX)?;
        // SAFETY: every element is written by the kernel.
        let out = unsafe { dev.alloc::<T>(rows_total * len)? };
        let mut b = func.builder();
        b.arg(&views[0]);
        b.arg(&views[1]);
        b.arg(&views[2]);
        b.arg(&tables.rows);
        b.arg(&tables.lens);
        b.arg(&out);
        let ints = [batch as i32, heads as i32, len as i32, width as i32, op.use_c2p as i32, op.use_p2c as i32];
        for v in &ints {
            b.arg(v);
        }
        // SAFETY: the argument list matches the kernel's signature; sizes are checked above.
        unsafe { b.launch(cfg) }.w()?;
        Ok(CudaStorage::wrap_cuda_slice(out, dev))
    }
}

/// Attention probabilities `[heads, batch, len, len]` from the content scores `qk`
/// `[heads, batch, len, len]` and the relative terms `c2p`, `p2c` `[heads, batch*len, width]`
/// (either may be absent).
pub fn disentangled_softmax(
    plan: &AttentionPlan,
    qk: &Tensor,
    c2p: Option<&Tensor>,
    p2c: Option<&Tensor>,
) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    let fused = qk.device().is_cpu() || (qk.device().is_cuda() && plan.len <= cuda::MAX_LEN);
    #[cfg(not(feature = "cuda"))]
    let fused = qk.device().is_cpu();
    if fused {
        fused_softmax(plan, qk, c2p, p2c, None)
    } else {
        disentangled_softmax_generic(plan, qk, c2p, p2c)
    }
}

fn fused_softmax(
    plan: &AttentionPlan,
    qk: &Tensor,
    c2p: Option<&Tensor>,
    p2c: Option<&Tensor>,
    cuda_kernel: Option<CudaKernel>,
) -> Result<Tensor> {
    let op = DisentangledSoftmax { plan, use_c2p: c2p.is_some(), use_p2c: p2c.is_some(), cuda_kernel };
    let filler = c2p.or(p2c).unwrap_or(qk);
    let c2p = c2p.unwrap_or(filler).contiguous()?;
    let p2c = p2c.unwrap_or(filler).contiguous()?;
    Ok(qk.contiguous()?.apply_op3_no_bwd(&c2p, &p2c, &op)?)
}

/// The same computation from candle's generic ops: the path for non-CPU devices, and the
/// reference the fused CPU op is tested against.
pub fn disentangled_softmax_generic(
    plan: &AttentionPlan,
    qk: &Tensor,
    c2p: Option<&Tensor>,
    p2c: Option<&Tensor>,
) -> Result<Tensor> {
    let AttentionPlan { batch, heads, len, width, ref rows, ref lens, .. } = *plan;
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
        let bias = gather(&c2p.to_dtype(DType::F32)?, &index)?;
        scores = (scores + bias)?;
    }
    if let Some(p2c) = p2c {
        let bias = gather(&p2c.to_dtype(DType::F32)?, &index.t()?.contiguous()?)?.transpose(2, 3)?;
        scores = (scores + bias)?;
    }
    // Key padding as -inf; padding query rows are zeroed afterwards, like the fused op.
    let mut key_mask = vec![0f32; batch * len];
    let mut row_keep = vec![0f32; batch * len];
    for (b, &n) in lens.iter().enumerate() {
        key_mask[b * len + n..(b + 1) * len].fill(f32::NEG_INFINITY);
        row_keep[b * len..b * len + n].fill(1.0);
    }
    let key_mask = Tensor::from_vec(key_mask, (1, batch, 1, len), dev)?;
    let row_keep = Tensor::from_vec(row_keep, (1, batch, len, 1), dev)?;
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

    /// The fused op against the generic one on `dev`, for every c2p/p2c combination, with the
    /// last sequence only one token long (all its other query rows are padding).
    fn check_fused(dev: &Device, dtype: DType, (batch, heads, len): (usize, usize, usize), tol: f32) {
        check_kernel(dev, dtype, (batch, heads, len), tol, None)
    }

    fn check_kernel(
        dev: &Device,
        dtype: DType,
        (batch, heads, len): (usize, usize, usize),
        tol: f32,
        kernel: Option<CudaKernel>,
    ) {
        let rp = crate::arch::deberta::relpos::RelPos::new(64, 256, 512);
        let (_, rows) = rp.rows_for_len(len);
        let width = *rows.iter().max().unwrap() as usize + 1;
        let mut lens: Vec<usize> = (0..batch).map(|b| len - b * len / batch).collect();
        *lens.last_mut().unwrap() = 1;
        let plan = AttentionPlan::new(batch, heads, len, width, rows, lens);
        let t = |shape: &[usize]| Tensor::randn(0f32, 1.0, shape, dev).unwrap().to_dtype(dtype).unwrap();
        let qk = t(&[heads, batch, len, len]);
        let c2p = t(&[heads, batch * len, width]);
        let p2c = t(&[heads, batch * len, width]);
        for (c, p) in [(Some(&c2p), Some(&p2c)), (Some(&c2p), None), (None, Some(&p2c)), (None, None)] {
            let fused = fused_softmax(&plan, &qk, c, p, kernel).unwrap().to_dtype(DType::F32).unwrap();
            let generic = disentangled_softmax_generic(&plan, &qk, c, p).unwrap().to_dtype(DType::F32).unwrap();
            let diff = (fused - generic).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < tol, "{dtype:?} {kernel:?} {:?}: max difference {diff}", (c.is_some(), p.is_some()));
        }
    }

    #[test]
    fn fused_cpu_op_matches_generic_ops() {
        check_fused(&Device::Cpu, DType::F32, (3, 2, 7), 1e-6);
        check_fused(&Device::Cpu, DType::F32, (2, 3, 150), 1e-6);
    }

    /// Runs where a CUDA device is usable (a build with the `cuda` feature on a GPU machine);
    /// elsewhere it says so and passes.
    #[cfg(feature = "cuda")]
    #[test]
    fn fused_cuda_op_matches_generic_ops() {
        let Some(dev) = crate::test_cuda_device("fused_cuda_op_matches_generic_ops") else { return };
        for kernel in [CudaKernel::Warp, CudaKernel::Block] {
            let k = Some(kernel);
            check_kernel(&dev, DType::F32, (3, 2, 7), 1e-6, k);
            check_kernel(&dev, DType::F32, (4, 12, 300), 1e-6, k);
            check_kernel(&dev, DType::F16, (4, 12, 256), 2e-3, k);
            check_kernel(&dev, DType::BF16, (4, 12, 256), 1.6e-2, k);
        }
        // Past the warp kernel's limit the automatic choice is the block kernel.
        assert_eq!(CudaKernel::for_len(CUDA_WARP_MAX_LEN + 1), CudaKernel::Block);
        check_fused(&dev, DType::F32, (2, 2, CUDA_WARP_MAX_LEN + 77), 1e-6);
    }
}
