//! The element-wise tails of an encoder layer, each one pass over the activations:
//!
//! - [`split_heads`]: the query/key/value projection's bias, the query's scale and the split
//!   into heads `[heads, rows, head]`; [`merge_heads`] puts the context back into rows;
//! - [`bias_act`]: `act(y + bias)` after the intermediate projection;
//! - [`add_norm`]: `layer_norm(y + bias + residual)` after the attention-output and output
//!   projections, reading and returning the residual stream in f32 whatever the model's dtype
//!   (f16/bf16 models keep their weights and matmuls in half precision, but the stream that
//!   carries every layer's output to the next is not rounded to 8 or 11 bits at each layer).
//!
//! With the `cuda` feature each is one kernel of `src/cuda/layer.cu` on CUDA devices; elsewhere,
//! and for activations the kernel does not cover, they are candle ops in the same order as
//! transformers (bias, then residual, then layer norm), so f32 results are unchanged.

use candle_core::{DType, Tensor};

use crate::config::Activation;
use crate::error::Result;

/// Bias, scale and shift of one `add_norm`, in f32.
#[derive(Debug)]
pub struct NormParams {
    /// `[3, n]`: bias, gamma, beta (the CUDA kernel's argument).
    #[cfg(feature = "cuda")]
    packed: Tensor,
    bias: Tensor,
    gamma: Tensor,
    beta: Tensor,
    eps: f64,
    /// Bias, gamma and beta on the host, for the CPU pass.
    host: [Vec<f32>; 3],
}

impl NormParams {
    /// From the projection's bias and the layer norm's weight and bias (any dtype; kept in f32).
    pub fn new(bias: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Self> {
        let [bias, gamma, beta] = [bias, gamma, beta].map(|t| t.to_dtype(DType::F32));
        let (bias, gamma, beta) = (bias?, gamma?, beta?);
        let host = [bias.to_vec1::<f32>()?, gamma.to_vec1::<f32>()?, beta.to_vec1::<f32>()?];
        Ok(Self {
            host,
            #[cfg(feature = "cuda")]
            packed: Tensor::stack(&[&bias, &gamma, &beta], 0)?,
            bias,
            gamma,
            beta,
            eps,
        })
    }
}

/// `layer_norm(y + bias + residual)` in f32: `y` `[rows, n]` in the model's dtype (a projection
/// without its bias), `residual` `[rows, n]` f32.
pub fn add_norm(y: &Tensor, residual: &Tensor, p: &NormParams) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if y.device().is_cuda() {
        return cuda::add_norm(y, residual, p);
    }
    if y.device().is_cpu() && y.dtype() == DType::F32 && residual.dtype() == DType::F32 {
        return Ok(y.apply_op2_no_bwd(residual, &CpuAddNorm(p))?);
    }
    let s = (y.to_dtype(DType::F32)?.broadcast_add(&p.bias)? + residual)?;
    Ok(candle_nn::ops::layer_norm(&s, &p.gamma, &p.beta, p.eps as f32)?)
}

/// Where the rows of an unpadded batch go in the padded one: `padded` rows in all, row `t` of
/// the unpadded tensor at `rows[t]` (the others are padding).
#[derive(Debug, Clone, Copy)]
pub struct RowMap<'a> {
    pub padded: usize,
    pub rows: &'a [u32],
}

/// Query, key and value `[heads, rows, d]` from the projection `qkv` `[rows, 3 * heads * d]`
/// (without its bias) and the bias `[3 * heads * d]`; the query divided by `scale`. With `map`,
/// `qkv` holds only the real rows and the result is laid out in the padded rows, padding zero.
pub fn split_heads(qkv: &Tensor, bias: &Tensor, heads: usize, scale: f64, map: Option<RowMap>) -> Result<(Tensor, Tensor, Tensor)> {
    if let Some(map) = map {
        if qkv.device().is_cpu() && qkv.dtype() == DType::F32 && bias.dtype() == DType::F32 {
            let op = CpuSplitHeads { heads, scale: scale as f32, map: Some(map) };
            let parts = qkv.apply_op2_no_bwd(bias, &op)?;
            return Ok((parts.get(0)?, parts.get(1)?, parts.get(2)?));
        }
        let index = Tensor::from_slice(map.rows, map.rows.len(), qkv.device())?;
        let padded = Tensor::zeros((map.padded, qkv.dim(1)?), qkv.dtype(), qkv.device())?.index_add(&index, qkv, 0)?;
        return split_heads(&padded, bias, heads, scale, None);
    }
    let (rows, three_h) = qkv.dims2()?;
    let d = three_h / 3 / heads;
    #[cfg(feature = "cuda")]
    if qkv.device().is_cuda() && 3 * rows * heads * d < u32::MAX as usize {
        let parts = cuda::split_heads(qkv, bias, heads, scale)?;
        return Ok((parts.get(0)?, parts.get(1)?, parts.get(2)?));
    }
    if qkv.device().is_cpu() && qkv.dtype() == DType::F32 && bias.dtype() == DType::F32 {
        let parts = qkv.apply_op2_no_bwd(bias, &CpuSplitHeads { heads, scale: scale as f32, map: None })?;
        return Ok((parts.get(0)?, parts.get(1)?, parts.get(2)?));
    }
    let parts = qkv.broadcast_add(bias)?.reshape((rows, 3, heads, d))?.permute((1, 2, 0, 3))?.contiguous()?;
    Ok(((parts.get(0)? / scale)?, parts.get(1)?, parts.get(2)?))
}

/// `[rows, heads * d]` from `x` `[heads, rows, d]`.
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (heads, rows, d) = x.dims3()?;
    #[cfg(feature = "cuda")]
    if x.device().is_cuda() && rows * heads * d < u32::MAX as usize {
        return cuda::merge_heads(x);
    }
    Ok(x.transpose(0, 1)?.contiguous()?.reshape((rows, heads * d))?)
}

/// `act(y + bias)` in the model's dtype: `y` `[rows, n]`, `bias` `[n]`.
pub fn bias_act(y: &Tensor, bias: &Tensor, act: Activation) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if y.device().is_cuda() && act == Activation::Gelu {
        return cuda::bias_gelu(y, bias);
    }
    if y.device().is_cpu() && y.dtype() == DType::F32 && act == Activation::Gelu {
        return Ok(y.apply_op2_no_bwd(bias, &CpuBiasGelu)?);
    }
    let x = y.broadcast_add(bias)?;
    Ok(match act {
        Activation::Gelu => x.gelu_erf()?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Relu => x.relu()?,
        Activation::Silu => x.silu()?,
    })
}

/// The contiguous f32 data of a CPU storage and layout, or an error naming `op`.
fn cpu_f32<'a>(op: &str, s: &'a candle_core::CpuStorage, l: &candle_core::Layout) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (candle_core::CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("{op} wants contiguous f32 inputs"),
    }
}

/// [`add_norm`] for f32 on the CPU: one pass per row, rows in parallel
/// ([`crate::vector::add_norm_row`]).
struct CpuAddNorm<'a>(&'a NormParams);

impl candle_core::CustomOp2 for CpuAddNorm<'_> {
    fn name(&self) -> &'static str {
        "add_norm"
    }

    fn cpu_fwd(
        &self,
        y: &candle_core::CpuStorage,
        yl: &candle_core::Layout,
        r: &candle_core::CpuStorage,
        rl: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let (rows, n) = yl.shape().dims2()?;
        let (y, r) = (cpu_f32("add_norm", y, yl)?, cpu_f32("add_norm", r, rl)?);
        let [bias, gamma, beta] = &self.0.host;
        if r.len() != rows * n || bias.len() != n {
            candle_core::bail!("add_norm: shapes {:?} and {:?} with {} parameters", yl.shape(), rl.shape(), bias.len())
        }
        let mut out = vec![0f32; rows * n];
        let eps = self.0.eps as f32;
        out.par_chunks_mut(n.max(1)).zip(y.par_chunks(n.max(1))).zip(r.par_chunks(n.max(1))).with_min_len(8).for_each(
            |((o, y), r)| crate::vector::add_norm_row(y, r, bias, gamma, beta, eps, o),
        );
        Ok((candle_core::CpuStorage::F32(out), yl.shape().clone()))
    }
}

/// [`split_heads`] for f32 on the CPU: `[3, heads, rows, d]` in one pass
/// ([`crate::vector::split_heads_row`]); with `map` (padded rows, the padded row of each input
/// row), the input rows are written to their padded rows and the padding is zero.
struct CpuSplitHeads<'a> {
    heads: usize,
    scale: f32,
    map: Option<RowMap<'a>>,
}

impl candle_core::CustomOp2 for CpuSplitHeads<'_> {
    fn name(&self) -> &'static str {
        "split_heads"
    }

    fn cpu_fwd(
        &self,
        qkv: &candle_core::CpuStorage,
        ql: &candle_core::Layout,
        b: &candle_core::CpuStorage,
        bl: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (rows, three_h) = ql.shape().dims2()?;
        let (qkv, bias) = (cpu_f32("split_heads", qkv, ql)?, cpu_f32("split_heads", b, bl)?);
        if bias.len() != three_h || three_h % (3 * self.heads) != 0 {
            candle_core::bail!("split_heads: shapes {:?} and {:?}", ql.shape(), bl.shape())
        }
        let out_rows = match self.map {
            Some(map) if map.rows.len() == rows && map.rows.iter().all(|&r| (r as usize) < map.padded) => map.padded,
            Some(_) => candle_core::bail!("split_heads: a row map that does not fit {rows} rows"),
            None => rows,
        };
        let d = three_h / 3 / self.heads;
        let mut out = vec![0f32; out_rows * three_h];
        for (row, x) in qkv.chunks_exact(three_h.max(1)).enumerate() {
            let to = self.map.map_or(row, |map| map.rows[row] as usize);
            crate::vector::split_heads_row(x, bias, self.heads, out_rows, to, self.scale, &mut out);
        }
        Ok((candle_core::CpuStorage::F32(out), candle_core::Shape::from((3, self.heads, out_rows, d))))
    }
}

/// `gelu(y + bias)` for f32 on the CPU in one pass ([`crate::vector::bias_gelu`]).
struct CpuBiasGelu;

impl candle_core::CustomOp2 for CpuBiasGelu {
    fn name(&self) -> &'static str {
        "bias_gelu"
    }

    fn cpu_fwd(
        &self,
        y: &candle_core::CpuStorage,
        yl: &candle_core::Layout,
        b: &candle_core::CpuStorage,
        bl: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (rows, n) = yl.shape().dims2()?;
        let (y, bias) = (cpu_f32("bias_gelu", y, yl)?, cpu_f32("bias_gelu", b, bl)?);
        if bias.len() != n {
            candle_core::bail!("bias_gelu: bias of {} for {n} columns", bias.len())
        }
        let mut out = vec![0f32; rows * n];
        crate::vector::bias_gelu(y, bias, &mut out);
        Ok((candle_core::CpuStorage::F32(out), yl.shape().clone()))
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    //! Launches `src/cuda/layer.cu`: each kernel is one [`Op`], a candle op for CUDA only.
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{CudaView, DeviceRepr, LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, WrapErr};
    use candle_core::{CpuStorage, CudaStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};

    use super::NormParams;
    use crate::error::Result;

    const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/layer.ptx"));
    const MODULE: &str = "biomed_ner_engine_layer";
    const THREADS: u32 = 256;

    fn view<'a, T: CudaDType + DeviceRepr>(s: &'a CudaStorage, l: &Layout) -> candle_core::Result<CudaView<'a, T>> {
        let (a, b) = l
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("fused layer ops want contiguous inputs".into()))?;
        Ok(s.as_cuda_slice::<T>()?.slice(a..b))
    }

    /// Grid for a grid-stride kernel over `total` elements.
    fn grid(total: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (total.div_ceil(THREADS as usize).clamp(1, 65_535 * 8) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// One kernel of layer.cu (named `<name>_<dtype>` there) and its scalar arguments.
    enum Op {
        /// y `[rows, n]` (T), residual `[rows, n]` (f32), params `[3, n]` (f32) -> f32 `[rows, n]`.
        AddNorm { eps: f32 },
        /// y `[rows, n]`, bias `[n]` -> `[rows, n]`.
        BiasGelu,
        /// qkv `[rows, 3 * heads * d]`, bias `[3 * heads * d]` -> `[3, heads, rows, d]`.
        SplitHeads { heads: usize, q_scale: f32 },
        /// x `[heads, rows, d]` -> `[rows, heads * d]`.
        MergeHeads,
    }

    impl Op {
        fn kernel(&self) -> &'static str {
            match self {
                Op::AddNorm { .. } => "add_norm",
                Op::BiasGelu => "bias_gelu",
                Op::SplitHeads { .. } => "split_heads",
                Op::MergeHeads => "merge_heads",
            }
        }

        /// Checks the shapes, launches the kernel for the first input's dtype `T` and returns
        /// the output.
        fn launch<T: CudaDType + DeviceRepr>(
            &self,
            suffix: &str,
            inputs: &[(&CudaStorage, &Layout)],
        ) -> candle_core::Result<(CudaStorage, Shape)> {
            let (x, xl) = inputs[0];
            let dims: Vec<&[usize]> = inputs.iter().map(|(_, l)| l.shape().dims()).collect();
            let bad = || candle_core::Error::Msg(format!("{}: shapes {dims:?}", self.kernel()));
            let dev = x.device().clone();
            let func = dev.get_or_load_custom_func(&format!("{}_{suffix}", self.kernel()), MODULE, PTX)?;
            let xv = view::<T>(x, xl)?;
            let mut b = func.builder();
            b.arg(&xv);
            // Every kernel writes each element of its output.
            match *self {
                Op::AddNorm { eps } => {
                    let (rows, n) = xl.shape().dims2()?;
                    if dims[1] != [rows, n] || dims[2] != [3, n] {
                        return Err(bad());
                    }
                    let (rv, pv) = (view::<f32>(inputs[1].0, inputs[1].1)?, view::<f32>(inputs[2].0, inputs[2].1)?);
                    // SAFETY: see above.
                    let out = unsafe { dev.alloc::<f32>(rows * n)? };
                    let n_i = n as i32;
                    b.arg(&rv).arg(&pv).arg(&out).arg(&n_i).arg(&eps);
                    let cfg = LaunchConfig {
                        grid_dim: (rows as u32, 1, 1),
                        block_dim: (THREADS, 1, 1),
                        shared_mem_bytes: ((n + 32) * 4) as u32,
                    };
                    // SAFETY: the arguments match the kernel's signature; shapes are checked above.
                    unsafe { b.launch(cfg) }.w()?;
                    Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from((rows, n))))
                }
                Op::BiasGelu => {
                    let (rows, n) = xl.shape().dims2()?;
                    if dims[1] != [n] {
                        return Err(bad());
                    }
                    let bv = view::<T>(inputs[1].0, inputs[1].1)?;
                    // SAFETY: see above.
                    let out = unsafe { dev.alloc::<T>(rows * n)? };
                    let (total, n_i) = ((rows * n) as u64, n as i32);
                    b.arg(&bv).arg(&out).arg(&total).arg(&n_i);
                    // SAFETY: as above.
                    unsafe { b.launch(grid(rows * n)) }.w()?;
                    Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from((rows, n))))
                }
                Op::SplitHeads { heads, q_scale } => {
                    let (rows, three_h) = xl.shape().dims2()?;
                    if dims[1] != [three_h] || three_h % (3 * heads) != 0 || rows * three_h >= u32::MAX as usize {
                        return Err(bad());
                    }
                    let d = three_h / 3 / heads;
                    let bv = view::<T>(inputs[1].0, inputs[1].1)?;
                    // SAFETY: see above.
                    let out = unsafe { dev.alloc::<T>(rows * three_h)? };
                    let (rows_u, heads_u, d_u) = (rows as u32, heads as u32, d as u32);
                    b.arg(&bv).arg(&out).arg(&rows_u).arg(&heads_u).arg(&d_u).arg(&q_scale);
                    // SAFETY: as above; the element count fits the kernel's 32-bit indices.
                    unsafe { b.launch(grid(rows * three_h)) }.w()?;
                    Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from((3, heads, rows, d))))
                }
                Op::MergeHeads => {
                    let (heads, rows, d) = xl.shape().dims3()?;
                    if heads * rows * d >= u32::MAX as usize {
                        return Err(bad());
                    }
                    // SAFETY: see above.
                    let out = unsafe { dev.alloc::<T>(heads * rows * d)? };
                    let (rows_u, heads_u, d_u) = (rows as u32, heads as u32, d as u32);
                    b.arg(&out).arg(&rows_u).arg(&heads_u).arg(&d_u);
                    // SAFETY: as above.
                    unsafe { b.launch(grid(heads * rows * d)) }.w()?;
                    Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from((rows, heads * d))))
                }
            }
        }

        fn cuda(&self, inputs: &[(&CudaStorage, &Layout)]) -> candle_core::Result<(CudaStorage, Shape)> {
            match inputs[0].0.dtype() {
                DType::F32 => self.launch::<f32>("f32", inputs),
                DType::F16 => self.launch::<half::f16>("f16", inputs),
                DType::BF16 => self.launch::<half::bf16>("bf16", inputs),
                other => candle_core::bail!("{}: unsupported dtype {other:?}", self.kernel()),
            }
        }

        fn cpu(&self) -> candle_core::Result<(CpuStorage, Shape)> {
            candle_core::bail!("{}: the fused op is CUDA only", self.kernel())
        }
    }

    impl CustomOp1 for Op {
        fn name(&self) -> &'static str {
            self.kernel()
        }

        fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
            self.cpu()
        }

        fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
            self.cuda(&[(s, l)])
        }
    }

    impl CustomOp2 for Op {
        fn name(&self) -> &'static str {
            self.kernel()
        }

        fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
            self.cpu()
        }

        fn cuda_fwd(
            &self,
            s1: &CudaStorage,
            l1: &Layout,
            s2: &CudaStorage,
            l2: &Layout,
        ) -> candle_core::Result<(CudaStorage, Shape)> {
            self.cuda(&[(s1, l1), (s2, l2)])
        }
    }

    impl CustomOp3 for Op {
        fn name(&self) -> &'static str {
            self.kernel()
        }

        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> candle_core::Result<(CpuStorage, Shape)> {
            self.cpu()
        }

        fn cuda_fwd(
            &self,
            s1: &CudaStorage,
            l1: &Layout,
            s2: &CudaStorage,
            l2: &Layout,
            s3: &CudaStorage,
            l3: &Layout,
        ) -> candle_core::Result<(CudaStorage, Shape)> {
            self.cuda(&[(s1, l1), (s2, l2), (s3, l3)])
        }
    }

    pub fn add_norm(y: &Tensor, residual: &Tensor, p: &NormParams) -> Result<Tensor> {
        let op = Op::AddNorm { eps: p.eps as f32 };
        Ok(y.contiguous()?.apply_op3_no_bwd(&residual.contiguous()?, &p.packed, &op)?)
    }

    pub fn bias_gelu(y: &Tensor, bias: &Tensor) -> Result<Tensor> {
        Ok(y.contiguous()?.apply_op2_no_bwd(&bias.contiguous()?, &Op::BiasGelu)?)
    }

    pub fn split_heads(qkv: &Tensor, bias: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
        let op = Op::SplitHeads { heads, q_scale: (1.0 / scale) as f32 };
        Ok(qkv.contiguous()?.apply_op2_no_bwd(&bias.contiguous()?, &op)?)
    }

    pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
        Ok(x.contiguous()?.apply_op1_no_bwd(&Op::MergeHeads)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap()).unwrap();
        d.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
    }

    /// The device's ops against the same computation on the CPU in f32.
    fn check(dev: &Device, dtype: DType, (rows, n): (usize, usize), tol: f32) {
        let cpu = Device::Cpu;
        let t = |shape: &[usize]| Tensor::randn(0f32, 1.0, shape, &cpu).unwrap();
        let (y, res, bias, gamma, beta) = (t(&[rows, n]), t(&[rows, n]), t(&[n]), t(&[n]), t(&[n]));
        let y = y.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap(); // representable in dtype
        let p = NormParams::new(&bias, &gamma, &beta, 1e-7).unwrap();
        let want = add_norm(&y, &res, &p).unwrap();
        let on = |x: &Tensor| x.to_device(dev).unwrap();
        let pd = NormParams::new(&on(&bias), &on(&gamma), &on(&beta), 1e-7).unwrap();
        let got = add_norm(&on(&y).to_dtype(dtype).unwrap(), &on(&res), &pd).unwrap();
        assert_eq!(got.dtype(), DType::F32);
        let diff = max_diff(&got.to_device(&cpu).unwrap(), &want);
        assert!(diff < tol, "add_norm {dtype:?} {rows}x{n}: max difference {diff}");

        let bias_t = bias.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap();
        let want = (y.broadcast_add(&bias_t).unwrap()).gelu_erf().unwrap();
        let got = bias_act(&on(&y).to_dtype(dtype).unwrap(), &on(&bias_t).to_dtype(dtype).unwrap(), Activation::Gelu)
            .unwrap();
        assert_eq!(got.dtype(), dtype);
        let diff = max_diff(&got.to_device(&cpu).unwrap(), &want);
        let tol = if dtype == DType::F32 { tol } else { tol * 8.0 };
        assert!(diff < tol, "bias_gelu {dtype:?} {rows}x{n}: max difference {diff}");

        // Heads: n = 3 * heads * d with heads = 4.
        let (heads, scale) = (4, 3.5);
        let qkv = t(&[rows, 3 * n]).to_dtype(dtype).unwrap();
        let qkv_bias = t(&[3 * n]).to_dtype(dtype).unwrap();
        let want = split_heads(&qkv, &qkv_bias, heads, scale, None).unwrap();
        let got = split_heads(&on(&qkv), &on(&qkv_bias), heads, scale, None).unwrap();
        for (w, g) in [(&want.0, &got.0), (&want.1, &got.1), (&want.2, &got.2)] {
            assert_eq!(w.dims(), g.dims());
            let diff = max_diff(&g.to_device(&cpu).unwrap(), w);
            assert!(diff < tol * 8.0, "split_heads {dtype:?} {rows}x{n}: max difference {diff}");
        }
        let merged = merge_heads(&got.2).unwrap();
        assert_eq!(merged.dims(), [rows, n]);
        let want_v = qkv.broadcast_add(&qkv_bias).unwrap().narrow(1, 2 * n, n).unwrap();
        let diff = max_diff(&merged.to_device(&cpu).unwrap(), &want_v);
        assert!(diff == 0.0, "merge_heads {dtype:?}: max difference {diff}");
    }

    #[test]
    fn candle_path_is_bias_residual_norm() {
        check(&Device::Cpu, DType::F32, (5, 48), 1e-6);
    }

    /// Runs where a CUDA device is usable; elsewhere it says so and passes.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_kernels_match_candle_ops() {
        let Some(dev) = crate::test_cuda_device("cuda_kernels_match_candle_ops") else { return };
        check(&dev, DType::F32, (7, 48), 2e-5);
        check(&dev, DType::F32, (300, 768), 2e-5);
        check(&dev, DType::F16, (300, 768), 2e-3);
        check(&dev, DType::BF16, (300, 1024), 1e-2);
    }
}
