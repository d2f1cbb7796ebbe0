//! Batched matrix products for the attention's small per-head matmuls on the CPU.
//!
//! candle runs a batch of products one after the other, each spread over every thread; for
//! the attention's products (one per head, or per head and sequence: tens of kilo-MACs to a
//! few mega-MACs each) the threads spend more time meeting than multiplying. Here, when there
//! are at least as many products as threads, the products themselves run side by side, each
//! on one thread, with the same gemm kernels, so every product's arithmetic and its order are
//! what candle's would be.

use candle_core::{CpuStorage, DType, Layout, Storage, Tensor};
use rayon::prelude::*;

use crate::error::Result;

/// `a @ b` for `a` `[batch, m, k]` and `b` `[batch, k, n]` (any strides): `[batch, m, n]`.
pub fn bmm(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (batch, m, k) = a.dims3()?;
    let (batch_b, k_b, n) = b.dims3()?;
    let threads = rayon::current_num_threads();
    if !(a.device().is_cpu() && a.dtype() == DType::F32 && b.dtype() == DType::F32)
        || batch != batch_b
        || k != k_b
        || batch < threads
        || threads < 2
    {
        return Ok(a.matmul(b)?);
    }
    let (sa, la) = a.storage_and_layout();
    let (sb, lb) = b.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(va)), Storage::Cpu(CpuStorage::F32(vb))) = (&*sa, &*sb) else {
        drop((sa, sb));
        return Ok(a.matmul(b)?);
    };
    let mut out = vec![0f32; batch * m * n];
    if m * n > 0 {
        let (pa, pb) = (Ptr(va.as_ptr()), Ptr(vb.as_ptr()));
        let (ra, rb) = (strides(la), strides(lb));
        out.par_chunks_mut(m * n).enumerate().for_each(|(i, dst)| {
            let (pa, pb) = (&pa, &pb);
            // SAFETY: the offsets and strides are the tensors' own layouts, so every element
            // read lies in their storage; `dst` is this product's `m x n` block.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    pa.0.offset(ra.0 + i as isize * ra.1),
                    ra.3,
                    ra.2,
                    pb.0.offset(rb.0 + i as isize * rb.1),
                    rb.3,
                    rb.2,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        });
    }
    drop((sa, sb));
    Ok(Tensor::from_vec(out, (batch, m, n), a.device())?)
}

/// Start offset, then the batch, row and column strides of a 3-D layout.
fn strides(l: &Layout) -> (isize, isize, isize, isize) {
    let s = l.stride();
    (l.start_offset() as isize, s[0] as isize, s[1] as isize, s[2] as isize)
}

struct Ptr(*const f32);
// SAFETY: read-only pointers into tensors that outlive the parallel loop.
unsafe impl Sync for Ptr {}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    #[test]
    fn same_as_candle_for_strided_inputs() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let a = Tensor::randn(0f32, 1.0, (6, 5, 7), &Device::Cpu).unwrap();
        let t = Tensor::randn(0f32, 1.0, (6, 11, 7), &Device::Cpu).unwrap();
        // b: a narrowed, transposed view, as the relative tables are read.
        let b = t.narrow(1, 2, 8).unwrap().t().unwrap();
        let want = a.matmul(&b).unwrap();
        let got = pool.install(|| super::bmm(&a, &b)).unwrap();
        let diff = (want - got).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "{diff}");
    }
}
