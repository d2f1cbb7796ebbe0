//! The encoder's weights as it reads them: tensors by name with errors that say which one,
//! linear layers and layer norms, and projections either for candle's matmul or packed for this
//! crate's CPU kernels ([`crate::linear`]).

use candle_core::{CpuStorage, DType, Storage, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use crate::error::{Error, Result};
use crate::config::Activation;
use crate::fused::{bias_act, NormParams};
use crate::linear::{Bf16Linear, HostLinear, PackedLinear, QuantLinear};
use crate::Precision;

pub(super) fn weight_error(vb: &VarBuilder, name: &str, e: candle_core::Error) -> Error {
    let full = if vb.prefix().is_empty() { name.to_string() } else { format!("{}.{name}", vb.prefix()) };
    let reason = match e {
        candle_core::Error::CannotFindTensor { .. } => "missing from the weights file".to_string(),
        e => e.to_string(),
    };
    Error::Weight { name: full, reason }
}

pub(super) fn get(vb: &VarBuilder, shape: &[usize], name: &str) -> Result<Tensor> {
    vb.get(shape, name).map_err(|e| weight_error(vb, name, e))
}

pub(super) fn linear(vb: &VarBuilder, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
    let w = get(vb, &[d_out, d_in], "weight")?;
    let b = if bias { Some(get(vb, &[d_out], "bias")?) } else { None };
    Ok(Linear::new(w, b))
}

pub(super) fn layer_norm(vb: &VarBuilder, size: usize, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm::new(get(vb, &[size], "weight")?, get(vb, &[size], "bias")?, eps))
}

pub(super) fn layer_norm_fwd(ln: &LayerNorm, x: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::layer_norm(x, ln.weight(), ln.bias().expect("layer norm has a bias"), ln.eps() as f32)?)
}

/// `x @ w^T` for `x` `[rows, in]`, `w` `[out, in]`.
pub(super) fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    Ok(x.matmul(&w.t()?)?)
}

/// The weight of a projection inside a layer, without its bias: a tensor in the model's dtype
/// for candle's matmul, or packed by [`crate::linear`] for this crate's CPU kernels (f32 with
/// AVX-512F, bf16 with AVX-512 BF16, int8 for `Precision::Int8`).
pub(super) enum Proj {
    Dense(Tensor),
    Host(Box<dyn HostLinear>),
}

impl Proj {
    /// From `w` `[out, in]`.
    pub(super) fn new(w: Tensor, precision: Precision) -> Result<Self> {
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
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(w) => matmul_t(x, w),
            Self::Host(l) => host_forward(x, l.as_ref(), |x, rows| l.forward(x, rows)),
        }
    }

    /// `act(x @ w^T + bias)`; for the packed kinds with the exact GELU, the bias and activation
    /// are applied to each tile of the product while it is in cache.
    pub(super) fn forward_act(&self, x: &Tensor, bias: &Tensor, act: Activation) -> Result<Tensor> {
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
pub(super) fn host_forward(x: &Tensor, l: &dyn HostLinear, f: impl FnOnce(&[f32], usize) -> Vec<f32>) -> Result<Tensor> {
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
pub(super) fn norm_params(dense: &VarBuilder, norm: &VarBuilder, h: usize, eps: f64) -> Result<NormParams> {
    let (dense, norm) = (dense.clone().set_dtype(DType::F32), norm.clone().set_dtype(DType::F32));
    NormParams::new(&get(&dense, &[h], "bias")?, &get(&norm, &[h], "weight")?, &get(&norm, &[h], "bias")?, eps)
}

