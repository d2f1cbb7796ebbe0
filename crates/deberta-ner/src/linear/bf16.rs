//! bf16 projections on CPUs with AVX-512 BF16: weights rounded to bf16 once at load, each input
//! row rounded to bf16 at the call, products summed in f32 by `vdpbf16ps` (two per lane per
//! instruction, twice the f32 FMA rate). Everything between the projections stays in f32 (the
//! model runs with f32 activations), so only the projections' inputs and weights are rounded.
//! Where the CPU has no AVX-512 BF16, `dtype = bf16` keeps candle's bf16 path.

use half::bf16;
use rayon::prelude::*;

use super::{f32_tiles, pack, Epilogue, HostLinear};

/// A linear layer's weight `[n, k]` in bf16, packed `[ceil(n / 16)][kp / 2][16][2]`.
pub struct Bf16Linear {
    n: usize,
    k: usize,
    /// `k` rounded up to even (the padding weighs zero).
    kp: usize,
    packed: Vec<u16>,
}

impl Bf16Linear {
    /// Rounds and packs `w`, row-major `[n, k]` f32; `None` where the CPU lacks AVX-512 BF16.
    pub fn new(w: &[f32], n: usize, k: usize) -> Option<Self> {
        if !available() {
            return None;
        }
        let bits: Vec<u16> = w.par_iter().map(|&v| bf16::from_f32(v).to_bits()).collect();
        let (packed, kp) = pack(&bits, n, k, 2);
        Some(Self { n, k, kp, packed })
    }
}

impl HostLinear for Bf16Linear {
    fn in_features(&self) -> usize {
        self.k
    }

    fn out_features(&self) -> usize {
        self.n
    }

    fn forward_with(&self, x: &[f32], rows: usize, epilogue: Epilogue) -> Vec<f32> {
        assert_eq!(x.len(), rows * self.k, "input size");
        let (k, kp) = (self.k, self.kp);
        let mut xb = vec![0u16; rows * kp];
        xb.par_chunks_mut(kp).enumerate().with_min_len(16).for_each(|(r, out)| {
            for (o, &v) in out.iter_mut().zip(&x[r * k..(r + 1) * k]) {
                *o = bf16::from_f32(v).to_bits();
            }
        });
        f32_tiles(rows, self.n, epilogue, |r, m, b, v, acc| {
            // SAFETY: the CPU has AVX-512 BF16 (checked in `new`); rows `r..r + m` of `xb` and
            // blocks `b..b + v` exist (`for_each_tile`).
            #[cfg(target_arch = "x86_64")]
            unsafe {
                avx512::tile(self, &xb, r, m, b, v, acc)
            };
        })
    }
}

/// Whether this CPU runs the kernel (AVX-512F and AVX-512 BF16; `DEBERTA_NER_NO_PACKED_BF16`
/// turns it off, to compare with candle's bf16 path).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::env::var_os("DEBERTA_NER_NO_PACKED_BF16").is_none()
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bf16")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::Bf16Linear;
    use crate::linear::{BLOCK, MR, NV};

    /// # Safety
    /// The CPU has AVX-512F and AVX-512 BF16; rows `r..r + m` of `xb` and blocks `b..b + v` of
    /// `l` exist.
    pub(super) unsafe fn tile(l: &Bf16Linear, xb: &[u16], r: usize, m: usize, b: usize, v: usize, acc: &mut [[f32; BLOCK * NV]; MR]) {
        tile_shape!(kernel, m, v, (l, xb, r, b, acc))
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn kernel<const M: usize, const V: usize>(l: &Bf16Linear, xb: &[u16], r: usize, b: usize, out: &mut [[f32; BLOCK * NV]; MR]) {
        let kp = l.kp;
        let mut acc = [[_mm512_setzero_ps(); V]; M];
        let w = l.packed.as_ptr().add(b * BLOCK * kp);
        let a = xb.as_ptr().add(r * kp);
        for k2 in 0..kp / 2 {
            let mut wv = [_mm512_setzero_si512(); V];
            for (j, wv) in wv.iter_mut().enumerate() {
                *wv = _mm512_loadu_si512(w.add(j * BLOCK * kp + k2 * BLOCK * 2).cast());
            }
            for (i, acc) in acc.iter_mut().enumerate() {
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(a.add(i * kp + 2 * k2).cast::<i32>().read_unaligned()));
                for (acc, wv) in acc.iter_mut().zip(&wv) {
                    *acc = _mm512_dpbf16_ps(*acc, av, std::mem::transmute::<__m512i, __m512bh>(*wv));
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

    #[test]
    fn sums_of_the_rounded_values() {
        for &(rows, n, k) in &[(1, 16, 4), (7, 64, 768), (13, 80, 31), (6, 3, 5)] {
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            let x: Vec<f32> = (0..rows * k).map(|i| ((i * 104729) % 1000) as f32 / 250.0 - 2.0).collect();
            let Some(l) = Bf16Linear::new(&w, n, k) else {
                eprintln!("no AVX-512 BF16: skipped");
                return;
            };
            let y = l.forward(&x, rows);
            let round = |v: f32| bf16::from_f32(v).to_f32();
            for r in 0..rows {
                for j in 0..n {
                    let exact: f64 = (0..k).map(|i| round(x[r * k + i]) as f64 * round(w[j * k + i]) as f64).sum();
                    let got = y[r * n + j] as f64;
                    assert!((got - exact).abs() <= 1e-4 * (1.0 + exact.abs()) * (k as f64).sqrt(), "{rows}x{n}x{k} at {r},{j}: {got} vs {exact}");
                }
            }
        }
    }
}
