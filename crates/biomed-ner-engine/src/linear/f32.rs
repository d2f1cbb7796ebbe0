//! f32 projections with weights packed at load: `y = x @ w^T` with AVX-512 FMA.
//!
//! candle's matmul (the gemm crate) packs the weight on every call and spreads each product
//! over the threads; at the short sequences of clinical notes (a batch of one 26-token note is
//! a 26 x 768 by 768 x 3072 product) that overhead was most of the time (a base model ran at
//! well under half its batch-8 rate at batch 1: bench/results/README.md, "Engine figures behind
//! the code"). Here the weight is packed once, `[ceil(n / 16)]
//! [k][16]`, and a tile of up to 6 rows by 64 channels keeps its 24 sums in registers over the
//! whole of `k`, each sum accumulated in order of `k` by fused multiply-adds.

use super::{f32_tiles, pack, Epilogue, HostLinear};

/// A linear layer's weight `[n, k]`, packed for the AVX-512 kernel.
pub struct PackedLinear {
    n: usize,
    k: usize,
    /// `[ceil(n / 16)][k][16]`, the channels past `n` zero.
    packed: Vec<f32>,
}

impl PackedLinear {
    /// Packs `w`, row-major `[n, k]`; `None` where this CPU has no AVX-512F (the caller keeps
    /// its matmul).
    pub fn new(w: &[f32], n: usize, k: usize) -> Option<Self> {
        if !available() {
            return None;
        }
        let (packed, _) = pack(w, n, k, 1);
        Some(Self { n, k, packed })
    }
}

impl HostLinear for PackedLinear {
    fn in_features(&self) -> usize {
        self.k
    }

    fn out_features(&self) -> usize {
        self.n
    }

    fn forward_with(&self, x: &[f32], rows: usize, epilogue: Epilogue) -> Vec<f32> {
        assert_eq!(x.len(), rows * self.k, "input size");
        f32_tiles(rows, self.n, epilogue, |r, m, b, v, acc| {
            // SAFETY: the CPU has AVX-512F (checked in `new`); rows `r..r + m` of `x` and blocks
            // `b..b + v` of the weight exist (`for_each_tile`).
            #[cfg(target_arch = "x86_64")]
            unsafe {
                avx512::tile(self, x, r, m, b, v, acc)
            };
        })
    }
}

/// Whether this CPU runs the kernel (AVX-512F; `DEBERTA_NER_NO_PACKED_F32` turns it off, to
/// compare with candle's matmul).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::env::var_os("DEBERTA_NER_NO_PACKED_F32").is_none() && is_x86_feature_detected!("avx512f")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::PackedLinear;
    use crate::linear::{BLOCK, MR, NV};

    /// Dispatches to the micro-kernel for `m` rows and `v` blocks.
    ///
    /// # Safety
    /// The CPU has AVX-512F; rows `r..r + m` of `x` and blocks `b..b + v` of `l` exist.
    pub(super) unsafe fn tile(l: &PackedLinear, x: &[f32], r: usize, m: usize, b: usize, v: usize, acc: &mut [[f32; BLOCK * NV]; MR]) {
        tile_shape!(kernel, m, v, (l, x, r, b, acc))
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn kernel<const M: usize, const V: usize>(l: &PackedLinear, x: &[f32], r: usize, b: usize, out: &mut [[f32; BLOCK * NV]; MR]) {
        let k = l.k;
        let mut acc = [[_mm512_setzero_ps(); V]; M];
        let w = l.packed.as_ptr().add(b * BLOCK * k);
        let a = x.as_ptr().add(r * k);
        for kk in 0..k {
            let mut wv = [_mm512_setzero_ps(); V];
            for (j, wv) in wv.iter_mut().enumerate() {
                *wv = _mm512_loadu_ps(w.add((j * k + kk) * BLOCK));
            }
            for (i, acc) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(i * k + kk));
                for (acc, wv) in acc.iter_mut().zip(&wv) {
                    *acc = _mm512_fmadd_ps(av, *wv, *acc);
                }
            }
        }
        for (acc, out) in acc.iter().zip(out.iter_mut()) {
            for (j, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add(j * BLOCK), *acc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::HostLinear;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    #[test]
    fn same_sums_as_a_plain_loop() {
        for &(rows, n, k) in &[(1, 16, 4), (7, 64, 768), (13, 80, 30), (50, 100, 97), (6, 3, 5), (0, 16, 8)] {
            let mut seed = (rows * 1000 + n * 10 + k) as u64;
            let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
            let x: Vec<f32> = (0..rows * k).map(|_| lcg(&mut seed)).collect();
            let Some(l) = PackedLinear::new(&w, n, k) else {
                eprintln!("no AVX-512F: skipped");
                return;
            };
            let y = l.forward(&x, rows);
            for r in 0..rows {
                for j in 0..n {
                    // The kernel's order: one fused multiply-add per k, in order.
                    let want = (0..k).fold(0f32, |s, i| x[r * k + i].mul_add(w[j * k + i], s));
                    assert_eq!(y[r * n + j], want, "rows {rows} n {n} k {k} at {r},{j}");
                }
            }
            let bias: Vec<f32> = (0..n).map(|j| j as f32 / 10.0).collect();
            let g = l.forward_bias_gelu(&x, rows, &bias);
            for (i, (&g, &y)) in g.iter().zip(&y).enumerate() {
                assert_eq!(g, crate::vector::gelu(y + bias[i % n]));
            }
        }
    }

    /// Not a test: `cargo test --release -p biomed-ner-engine f32_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn f32_speed() {
        use candle_core::{Device, Tensor};
        for (rows, n, k) in [(26, 3072, 768), (26, 768, 3072), (224, 3072, 768), (224, 768, 3072)] {
            let mut seed = 1;
            let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
            let x: Vec<f32> = (0..rows * k).map(|_| lcg(&mut seed)).collect();
            let Some(l) = PackedLinear::new(&w, n, k) else { return };
            let wt = Tensor::from_vec(w.clone(), (n, k), &Device::Cpu).unwrap();
            let xt = Tensor::from_vec(x.clone(), (rows, k), &Device::Cpu).unwrap();
            let iters = 20;
            let t = std::time::Instant::now();
            for _ in 0..iters {
                std::hint::black_box(l.forward(&x, rows));
            }
            let ours = t.elapsed().as_secs_f64() / iters as f64;
            let t = std::time::Instant::now();
            for _ in 0..iters {
                std::hint::black_box(xt.matmul(&wt.t().unwrap()).unwrap());
            }
            let theirs = t.elapsed().as_secs_f64() / iters as f64;
            let gmac = (rows * n * k) as f64 / 1e9;
            println!("{rows}x{k} by {k}x{n}: packed {:.0} GMAC/s, candle {:.0} GMAC/s", gmac / ours, gmac / theirs);
        }
    }
}
