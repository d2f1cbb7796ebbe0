//! bf16 projections on CPUs with AVX-512 BF16: weights rounded to bf16 once at load, each input
//! row rounded to bf16 at the call, products summed in f32 by `vdpbf16ps` (two per lane per
//! instruction, twice the f32 FMA rate). Everything between the projections stays in f32 (the
//! model runs with f32 activations), so only the projections' inputs and weights are rounded.
//! Where the CPU has no AVX-512 BF16, `dtype = bf16` keeps candle's bf16 path. Where it also
//! has AMX-BF16 (and the operating system grants the tiles), the same packing runs on AMX
//! tiles with `tdpbf16ps` ([`super::amx`]); `DEBERTA_NER_BF16_KERNEL=avx512` keeps `vdpbf16ps`.

use half::bf16;
use rayon::prelude::*;

use super::{f32_tiles, pack, Epilogue, HostLinear};

/// A linear layer's weight `[n, k]` in bf16, packed `[ceil(n / 16)][kp / 2][16][2]`.
pub struct Bf16Linear {
    n: usize,
    k: usize,
    /// `k` rounded up to even, or to a multiple of 32 for AMX (the padding weighs zero).
    kp: usize,
    packed: Vec<u16>,
    /// Whether the product runs on AMX tiles.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    amx: bool,
}

impl Bf16Linear {
    /// Rounds and packs `w`, row-major `[n, k]` f32; `None` where the CPU lacks AVX-512 BF16.
    pub fn new(w: &[f32], n: usize, k: usize) -> Option<Self> {
        if !available() {
            return None;
        }
        Some(Self::build(w, n, k, amx_available()))
    }

    /// [`Self::new`], on AMX tiles if `amx` (then AMX-BF16 must be granted).
    fn build(w: &[f32], n: usize, k: usize, amx: bool) -> Self {
        assert_eq!(w.len(), n * k, "weight size");
        // AMX takes 32 inputs at a time: rows padded with zero weights to a multiple of 32.
        let kw = if amx { k.div_ceil(32) * 32 } else { k };
        let mut bits = vec![0u16; n * kw];
        bits.par_chunks_mut(kw.max(1)).enumerate().for_each(|(j, out)| {
            for (o, &v) in out.iter_mut().zip(&w[j * k..(j + 1) * k]) {
                *o = bf16::from_f32(v).to_bits();
            }
        });
        let (packed, kp) = pack(&bits, n, kw, 2);
        Self { n, k, kp, packed, amx }
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
        #[cfg(target_arch = "x86_64")]
        if self.amx {
            // SAFETY: AMX-BF16 is granted (`amx_available` in `new`); `kp` is a multiple of 32.
            return unsafe { super::amx::forward_bf16(&self.packed, self.n, k, kp, x, rows, epilogue) };
        }
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

/// Whether the layers run on AMX-BF16 tiles (checked once; `DEBERTA_NER_BF16_KERNEL=avx512`
/// keeps the AVX-512 BF16 kernel, to compare).
fn amx_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AMX: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AMX.get_or_init(|| std::env::var("DEBERTA_NER_BF16_KERNEL").as_deref() != Ok("avx512") && super::amx::bf16_available())
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
            let bias: Vec<f32> = (0..n).map(|j| j as f32 / n as f32 - 0.5).collect();
            let fused = l.forward_bias_gelu(&x, rows, &bias);
            for (i, (&f, &y)) in fused.iter().zip(&y).enumerate() {
                assert_eq!(f, crate::vector::gelu(y + bias[i % n]));
            }
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

    /// AMX's sums within f32 rounding of the AVX-512 BF16 kernel's, on shapes that are and are
    /// not multiples of the tiles (rows, channels, inputs).
    #[test]
    fn amx_bf16_agrees_with_avx512_bf16() {
        #[cfg(target_arch = "x86_64")]
        if available() && super::super::amx::bf16_available() {
            println!("AMX-BF16 available: comparing with AVX-512 BF16");
            for &(rows, n, k) in &[(1, 16, 4), (7, 64, 768), (13, 80, 31), (17, 48, 33), (33, 100, 97), (64, 768, 3072), (6, 3, 5), (0, 16, 8)] {
                let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
                let x: Vec<f32> = (0..rows * k).map(|i| ((i * 104729) % 1000) as f32 / 250.0 - 2.0).collect();
                let (amx, avx) = (Bf16Linear::build(&w, n, k, true), Bf16Linear::build(&w, n, k, false));
                assert_eq!(amx.kp % 32, 0);
                let (ya, yv) = (amx.forward(&x, rows), avx.forward(&x, rows));
                let round = |v: f32| bf16::from_f32(v).to_f32() as f64;
                for r in 0..rows {
                    for j in 0..n {
                        let abs: f64 = (0..k).map(|i| (round(x[r * k + i]) * round(w[j * k + i])).abs()).sum();
                        let (a, v) = (ya[r * n + j] as f64, yv[r * n + j] as f64);
                        assert!((a - v).abs() <= 1e-6 * abs * (k as f64).sqrt() + 1e-6, "{rows}x{n}x{k} at {r},{j}: {a} vs {v}");
                    }
                }
            }
            return;
        }
        println!("AMX not available: skipped");
    }
}
