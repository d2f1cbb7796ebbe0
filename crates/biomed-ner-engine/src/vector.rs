//! Element-wise loops for the CPU, each compiled three times (AVX-512, AVX2 with FMA, and the
//! build's baseline) and chosen once at run time, so that a binary built for any x86-64 uses
//! the vector units the machine has (the gemm crate does the same for matrix products).
//!
//! - [`bias_gelu`]: `gelu(y + bias)` with the exact (erf) GELU, erf as a rational function
//!   fitted for this crate (`x P(x^2) / Q(x^2)` on `[-4, 4]`, constant beyond; max error
//!   4.5e-7 in f32 against f64 erf, 1.2e-6 on GELU, about 2 ulp): the scalar erf candle uses
//!   does not vectorise and took a tenth of a base model's forward pass;
//! - the int8 path's per-row range, quantisation and dequantisation ([`crate::linear::int8`]);
//! - the layer's f32 tails on the CPU ([`crate::fused`]): `layer_norm(y + bias + residual)` and
//!   the split of the query/key/value projection into heads;
//! - the attention softmax's exponentials ([`exp_sum`], with [`exp`]: reduction by powers of two
//!   and a degree-7 polynomial, within 2 ulp of f64 `exp` over the softmax's range): the scalar
//!   `expf` does not vectorise and took a quarter of the softmax at 512-token windows
//!   (bench/results/README.md, "Engine figures behind the code").

/// Which compiled copy runs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Level {
    Baseline,
    Avx2,
    Avx512,
}

fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
        *LEVEL.get_or_init(|| {
            if is_x86_feature_detected!("avx512f") {
                Level::Avx512
            } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                Level::Avx2
            } else {
                Level::Baseline
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    Level::Baseline
}

/// Defines `pub fn $name` that runs `$body` compiled for the best [`Level`] this CPU has.
macro_rules! multiversion {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                match level() {
                    // SAFETY: the CPU has the features (checked by `level`).
                    Level::Avx512 => return unsafe { avx512($($arg),*) },
                    Level::Avx2 => return unsafe { avx2($($arg),*) },
                    Level::Baseline => {}
                }
            }
            body($($arg),*)
        }
    };
}

/// erf's numerator `x * P(x^2)`, lowest power first.
const ERF_P: [f32; 7] = [
    1.128_378_6,
    0.215_275_45,
    0.052_612_565,
    0.004_351_805_4,
    0.000_157_096_2,
    -1.998_754_4e-6,
    1.922_652_3e-8,
];
/// erf's denominator `Q(x^2)`, lowest power first.
const ERF_Q: [f32; 5] = [1.0, 0.524_110_2, 0.121_352_73, 0.015_667_452, 0.001_112_810_6];

/// erf for f32, branch-free so that loops over it vectorise.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = ERF_P[6];
    for c in ERF_P[..6].iter().rev() {
        p = p.mul_add(x2, *c);
    }
    let mut q = ERF_Q[4];
    for c in ERF_Q[..4].iter().rev() {
        q = q.mul_add(x2, *c);
    }
    (x * p / q).clamp(-1.0, 1.0)
}

/// The exact GELU, `x * 0.5 * (1 + erf(x / sqrt(2)))`, as torch writes it.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    x * 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

multiversion! {
    /// `out[r][j] = gelu(y[r][j] + bias[j])` for row-major `y` and `out` with `bias.len()` columns.
    fn bias_gelu(y: &[f32], bias: &[f32], out: &mut [f32]) {
        for (o, y) in out.chunks_exact_mut(bias.len()).zip(y.chunks_exact(bias.len())) {
            for ((o, y), b) in o.iter_mut().zip(y).zip(bias) {
                *o = gelu(y + b);
            }
        }
    }
}

multiversion! {
    /// [`bias_gelu`] in place.
    fn bias_gelu_in_place(y: &mut [f32], bias: &[f32]) {
        for y in y.chunks_exact_mut(bias.len()) {
            for (y, b) in y.iter_mut().zip(bias) {
                *y = gelu(*y + b);
            }
        }
    }
}

multiversion! {
    /// The smallest and largest value of `row`, widened to hold 0 (NaN ignored).
    fn range(row: &[f32]) -> (f32, f32) {
        // Sixteen lanes of partial results, and comparisons rather than `f32::min` (whose NaN
        // rule costs extra instructions), so that the loop vectorises.
        let mut lo = [0f32; 16];
        let mut hi = [0f32; 16];
        let mut chunks = row.chunks_exact(16);
        for c in &mut chunks {
            for i in 0..16 {
                lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
                hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
            }
        }
        for (i, &v) in chunks.remainder().iter().enumerate() {
            lo[i] = if v < lo[i] { v } else { lo[i] };
            hi[i] = if v > hi[i] { v } else { hi[i] };
        }
        (lo.iter().fold(0f32, |a, &b| a.min(b)), hi.iter().fold(0f32, |a, &b| a.max(b)))
    }
}

/// Adding and subtracting 1.5 * 2^23 rounds an f32 in [0, 2^22] to the nearest integer, ties to
/// even (the default rounding mode), in two vectorisable additions; `round_ties_even` is a
/// library call per element without SSE4.1.
const ROUND: f32 = 12_582_912.0;

/// `out[i] = clamp(round(x[i] * inv + zero), 0, 255)`, ties to even (NaN gives 0).
pub fn quantise(x: &[f32], inv: f32, zero: f32, out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if matches!(level(), Level::Avx512) {
        // SAFETY: the CPU has AVX-512F (checked by `level`).
        return unsafe { quantise_avx512(x, inv, zero, out) };
    }
    quantise_auto(x, inv, zero, out)
}

/// [`quantise`] sixteen at a time: the compiler turns the portable loop's conversion to u8 into
/// one element at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn quantise_avx512(x: &[f32], inv: f32, zero: f32, out: &mut [u8]) {
    use std::arch::x86_64::*;
    let n = x.len().min(out.len());
    let (vinv, vzero, lo, hi) = (_mm512_set1_ps(inv), _mm512_set1_ps(zero), _mm512_setzero_ps(), _mm512_set1_ps(255.0));
    let mut i = 0;
    while i + 16 <= n {
        let c = _mm512_fmadd_ps(_mm512_loadu_ps(x.as_ptr().add(i)), vinv, vzero);
        // `max` returns its second operand for NaN (0, as the portable comparisons give), and
        // both give 0 for -0.
        let c = _mm512_min_ps(_mm512_max_ps(c, lo), hi);
        // Rounds to nearest, ties to even (the default rounding mode); 0..=255 fits a byte.
        let q = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(c));
        _mm_storeu_si128(out.as_mut_ptr().add(i).cast(), q);
        i += 16;
    }
    quantise_auto(&x[i..n], inv, zero, &mut out[i..n]);
}

multiversion! {
    /// [`quantise`] as the compiler vectorises it.
    fn quantise_auto(x: &[f32], inv: f32, zero: f32, out: &mut [u8]) {
        for (o, &v) in out.iter_mut().zip(x) {
            let c = v.mul_add(inv, zero);
            let c = if c > 0.0 { c } else { 0.0 };
            let c = if c < 255.0 { c } else { 255.0 };
            *o = ((c + ROUND) - ROUND) as u8;
        }
    }
}

multiversion! {
    /// `out[j] = (acc[j] - zero * col_sum[j]) * (scale * col_scale[j])`, the int8 path's
    /// dequantisation of one row of sums.
    fn dequantise(acc: &[i32], zero: i32, col_sum: &[i32], scale: f32, col_scale: &[f32], out: &mut [f32]) {
        for (((o, &a), &c), &s) in out.iter_mut().zip(acc).zip(col_sum).zip(col_scale) {
            *o = (a - zero * c) as f32 * (scale * s);
        }
    }
}

multiversion! {
    /// [`dequantise`] into memory not yet written (every value of `out` is written).
    fn dequantise_uninit(acc: &[i32], zero: i32, col_sum: &[i32], scale: f32, col_scale: &[f32], out: &mut [std::mem::MaybeUninit<f32>]) {
        for (((o, &a), &c), &s) in out.iter_mut().zip(acc).zip(col_sum).zip(col_scale) {
            o.write((a - zero * c) as f32 * (scale * s));
        }
    }
}

/// The sum of `x` in sixteen lanes (so that it vectorises), the lanes added in order.
#[inline(always)]
fn sum16(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            acc[i] += f(c[i]);
        }
    }
    for (i, &v) in chunks.remainder().iter().enumerate() {
        acc[i] += f(v);
    }
    acc.iter().sum()
}

multiversion! {
    /// One row of `layer_norm(y + bias + residual)` into `out`: mean, then the variance about
    /// it (two passes, as torch computes it, not `E[x^2] - E[x]^2`), both in f32.
    fn add_norm_row(y: &[f32], residual: &[f32], bias: &[f32], gamma: &[f32], beta: &[f32], eps: f32, out: &mut [f32]) {
        for (((o, &y), &r), &b) in out.iter_mut().zip(y).zip(residual).zip(bias) {
            *o = y + b + r;
        }
        let n = out.len() as f32;
        let mean = sum16(out, |v| v) / n;
        let var = sum16(out, |v| (v - mean) * (v - mean)) / n;
        let inv = 1.0 / (var + eps).sqrt();
        for ((o, &g), &b) in out.iter_mut().zip(gamma).zip(beta) {
            *o = (*o - mean) * inv * g + b;
        }
    }
}

multiversion! {
    /// One row of the query/key/value projection `qkv` (`3 * heads * d`) plus its bias, split
    /// into `out[part][head][row][..]` (`out` holds `3 * heads * rows * d`), the query divided
    /// by `scale`.
    fn split_heads_row(qkv: &[f32], bias: &[f32], heads: usize, rows: usize, row: usize, scale: f32, out: &mut [f32]) {
        let d = qkv.len() / 3 / heads;
        for part in 0..3 {
            for h in 0..heads {
                let src = (part * heads + h) * d;
                let dst = ((part * heads + h) * rows + row) * d;
                let (o, x, b) = (&mut out[dst..dst + d], &qkv[src..src + d], &bias[src..src + d]);
                if part == 0 {
                    for ((o, &x), &b) in o.iter_mut().zip(x).zip(b) {
                        *o = (x + b) / scale;
                    }
                } else {
                    for ((o, &x), &b) in o.iter_mut().zip(x).zip(b) {
                        *o = x + b;
                    }
                }
            }
        }
    }
}

/// `exp(x)` for f32 `x <= 0` (the softmax's `score - max`), branch-free so that loops over it
/// vectorise: `x = k ln 2 + r` with `|r| <= ln 2 / 2`, `exp(r)` by its Taylor polynomial to
/// `r^7` (truncation under 5e-9 relative), times `2^k` built in the exponent bits. Below -87.3,
/// where f32 `exp` turns subnormal (under 1.2e-38), it returns `exp(-87.3)`, which a softmax over
/// a row holding its own maximum (a term of 1) cannot tell from 0.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts, the first with few enough bits that `k * LN2_HI` is exact.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.3 { -87.3 } else { x };
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = (-k).mul_add(LN2_LO, (-k).mul_add(LN2_HI, x));
    let mut p: f32 = 1.0 / 5040.0;
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p.mul_add(r, c);
    }
    f32::from_bits(((k as i32 + 127) << 23) as u32) * p
}

multiversion! {
    /// Replaces each `v` of `row` by `exp(v - max)` ([`exp`]) and returns their sum (summed in
    /// sixteen lanes, so in another order than one by one: the same to a few ulp).
    fn exp_sum(row: &mut [f32], max: f32) -> f32 {
        let mut lanes = [0f32; 16];
        let mut chunks = row.chunks_exact_mut(16);
        for c in &mut chunks {
            for i in 0..16 {
                c[i] = exp(c[i] - max);
                lanes[i] += c[i];
            }
        }
        let mut sum = 0f32;
        for v in chunks.into_remainder() {
            *v = exp(*v - max);
            sum += *v;
        }
        sum + lanes.iter().sum::<f32>()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_is_within_two_ulp_over_the_softmax_range() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 0.0 {
            let want = (x as f64).exp();
            worst = worst.max((super::exp(x) as f64 - want).abs() / want);
            x += 1e-3;
        }
        // One f32 ulp is 6e-8 to 1.2e-7 of the value.
        assert!(worst < 2.4e-7, "worst relative error {worst}");
        assert_eq!(super::exp(0.0), 1.0);
        assert!(super::exp(-1000.0) < 1e-37 && super::exp(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn exp_sum_matches_f64() {
        let row: Vec<f32> = (0..203).map(|i| ((i * 37 % 101) as f32) * -0.173).collect();
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut got = row.clone();
        let sum = super::exp_sum(&mut got, max);
        let want: Vec<f64> = row.iter().map(|v| ((v - max) as f64).exp()).collect();
        for (g, w) in got.iter().zip(&want) {
            assert!(((*g as f64) - w).abs() <= 2.4e-7 * w, "{g} vs {w}");
        }
        let total: f64 = want.iter().sum();
        assert!(((sum as f64) - total).abs() < 1e-6 * total);
    }

    use super::*;

    /// erf in f64 by its Taylor series (|x| < 3) or continued fraction (beyond); reference only.
    fn erf64(x: f64) -> f64 {
        if x.abs() < 3.0 {
            let (mut term, mut sum, mut n) = (x, x, 0.0);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -x * x / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc by Lentz's continued fraction.
            let z = x.abs();
            let mut f = z;
            for k in (1..60).rev() {
                f = z + (k as f64 / 2.0) / f;
            }
            let erfc = (-z * z).exp() / std::f64::consts::PI.sqrt() / f;
            (1.0 - erfc) * x.signum()
        }
    }

    #[test]
    fn erf_within_half_a_micro() {
        let mut worst = 0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 / 10_000.0;
            worst = worst.max((erf(x) as f64 - erf64(x as f64)).abs());
        }
        assert!(worst < 5e-7, "max erf error {worst}");
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(-1e30), -1.0);
        assert_eq!(erf(0.0), 0.0);
    }

    #[test]
    fn dispatched_copies_agree_with_scalar() {
        let y: Vec<f32> = (0..3 * 37).map(|i| (i as f32 - 50.0) / 7.0).collect();
        let bias: Vec<f32> = (0..37).map(|j| j as f32 / 40.0).collect();
        let mut out = vec![0f32; y.len()];
        bias_gelu(&y, &bias, &mut out);
        let mut inplace = y.clone();
        bias_gelu_in_place(&mut inplace, &bias);
        for (i, (&o, &p)) in out.iter().zip(&inplace).enumerate() {
            let x = y[i] + bias[i % 37];
            let want = x as f64 * 0.5 * (1.0 + erf64(x as f64 / 2f64.sqrt()));
            assert!((o as f64 - want).abs() < 2e-6, "{x}: {o} vs {want}");
            assert_eq!(o, p);
        }
        let row: Vec<f32> = (0..45).map(|i| (i as f32 - 10.0) * 0.5).collect();
        assert_eq!(range(&row), (-5.0, 17.0));
        assert_eq!(range(&[1.0, 2.0]), (0.0, 2.0));
        let mut q = [0u8; 4];
        quantise(&[-1.0, 0.0, 0.5, 100.0], 2.0, 10.0, &mut q);
        assert_eq!(q, [8, 10, 11, 210]);
        // The AVX-512 path and the compiled loop agree on every value, ties, NaN and infinities.
        let mut x: Vec<f32> = (0..4000).map(|i| (i as f32 - 2000.0) * 0.0625).collect();
        x.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.5, 1.5, 2.5, 254.5, 255.5]);
        let (mut fast, mut auto) = (vec![0u8; x.len()], vec![0u8; x.len()]);
        quantise(&x, 0.5, 100.0, &mut fast);
        quantise_auto(&x, 0.5, 100.0, &mut auto);
        assert_eq!(fast, auto);
        let mut d = [0f32; 2];
        dequantise(&[100, -20], 3, &[10, -10], 0.5, &[1.0, 2.0], &mut d);
        assert_eq!(d, [35.0, 10.0]);
        let (y, r): (Vec<f32>, Vec<f32>) = ((0..40).map(|i| i as f32).collect(), vec![1.0; 40]);
        let (g, b): (Vec<f32>, Vec<f32>) = (vec![2.0; 40], vec![0.5; 40]);
        let mut out = vec![0f32; 40];
        add_norm_row(&y, &r, &vec![-1.0; 40], &g, &b, 1e-7, &mut out);
        let sd = ((0..40).map(|i| (i as f64 - 19.5).powi(2)).sum::<f64>() / 40.0).sqrt();
        for (i, &o) in out.iter().enumerate() {
            assert!((o as f64 - ((i as f64 - 19.5) / sd * 2.0 + 0.5)).abs() < 1e-5);
        }
    }
}
