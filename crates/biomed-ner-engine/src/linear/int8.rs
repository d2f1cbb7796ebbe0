//! Int8 linear layers for the CPU (`dtype = int8`): `y = x @ w^T` with `w` quantised once at
//! load and `x` quantised at every call, accumulated exactly in i32.
//!
//! - Weights: symmetric, per output channel: `w[n][k] ~ sw[n] * qw[n][k]`, `qw` in -127..=127.
//! - Activations: asymmetric, per row (token): `x[r][k] ~ sx[r] * (qx[r][k] - zx[r])`, `qx` in
//!   0..=255, the range widened to hold 0 so that zero is exact.
//! - `y[r][n] = sx[r] * sw[n] * (sum_k qx[r][k] qw[n][k] - zx[r] * sum_k qw[n][k])`; the sums are
//!   exact in i32 (at most `k * 255 * 127`, far below 2^31 for any `k` under 66,000).
//!
//! The product `u8 x i8` summed four at a time into i32 is what AVX-512 VNNI's `vpdpbusd` does
//! (without saturation), so the weights are packed for it at load: blocks of 16 output channels,
//! and in each block, for every 4 consecutive inputs, the 16 channels' 4 weights (64 bytes, one
//! vector). On CPUs without VNNI an AVX2 kernel widens the same layout to i16 for `vpmaddwd`
//! (on a base model about as fast as f32 on such a CPU, where VNNI is 2.5-3x), and elsewhere a
//! portable kernel reads it (many times slower than f32: use f32 there). All give identical
//! sums, so results do not depend on the CPU.
//!
//! Results do not depend on how rows were batched either: every row is quantised and
//! accumulated on its own, and the sums are exact integers.

use rayon::prelude::*;

use super::{pack, run_tiles, Epilogue, HostLinear, BLOCK, MR, NV};
use crate::vector;

/// A linear layer's weight `[n, k]`, quantised and packed.
pub struct QuantLinear {
    pub(super) n: usize,
    pub(super) k: usize,
    /// `k` rounded up to a multiple of 4 (the padding weighs zero).
    pub(super) kp: usize,
    /// `[ceil(n / 16)][kp / 4][16][4]`, then (on x86_64) zeros read by the AMX kernel.
    pub(super) packed: Vec<i8>,
    /// Per output channel (padded to the blocks with zeros): the weight scale.
    pub(super) scale: Vec<f32>,
    /// Per output channel (padded): the sum of its quantised weights.
    pub(super) col_sum: Vec<i32>,
}

impl QuantLinear {
    /// Quantises `w`, row-major `[n, k]` f32.
    pub fn new(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight size");
        let mut q = vec![0i8; n * k];
        let blocks = n.div_ceil(BLOCK);
        let mut scale = vec![0f32; blocks * BLOCK];
        let mut col_sum = vec![0i32; blocks * BLOCK];
        q.par_chunks_mut(k.max(1)).zip(scale.par_iter_mut().zip(col_sum.par_iter_mut())).enumerate().for_each(
            |(j, (q, (scale, col_sum)))| {
                let row = &w[j * k..(j + 1) * k];
                let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
                let s = if amax > 0.0 && amax.is_finite() { amax / 127.0 } else { 1.0 };
                let inv = 1.0 / s;
                for (q, &v) in q.iter_mut().zip(row) {
                    *q = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
                }
                *scale = s;
                *col_sum = q.iter().map(|&q| q as i32).sum();
            },
        );
        #[allow(unused_mut)]
        let (mut packed, kp) = pack(&q, n, k, 4);
        #[cfg(target_arch = "x86_64")]
        packed.resize(packed.len() + super::amx::PACK_TAIL, 0);
        Self { n, k, kp, packed, scale, col_sum }
    }

    /// [`HostLinear::forward_with`] on `kernel`.
    pub(super) fn forward_on(&self, x: &[f32], rows: usize, epilogue: Epilogue, kernel: Kernel) -> Vec<f32> {
        assert_eq!(x.len(), rows * self.k, "input size");
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Amx && super::amx::int8_available() {
            let ka = super::amx::int8_row_bytes(self.k);
            let qx = QuantRows::new_tiled(x, rows, self.k, ka);
            let finish = |ri: usize, c0: usize, acc: &[i32], row: &mut [std::mem::MaybeUninit<f32>]| {
                let c1 = c0 + row.len();
                crate::vector::dequantise_uninit(acc, qx.zero[ri], &self.col_sum[c0..c1], qx.scale[ri], &self.scale[c0..c1], row)
            };
            // SAFETY: AMX-INT8 is present and granted (checked just above).
            return unsafe { super::amx::forward_int8(&self.packed, self.n, self.kp, &qx.q, rows, epilogue, finish) };
        }
        let qx = QuantRows::new(x, rows, self.k, self.kp);
        run_tiles(
            rows,
            self.n,
            epilogue,
            |r, m, b, v, acc| match kernel {
                // SAFETY: the kernel was chosen for this CPU (`Kernel::best`, or the tests' check);
                // rows `r..r + m` and blocks `b..b + v` exist (`for_each_tile`).
                #[cfg(target_arch = "x86_64")]
                Kernel::Vnni => unsafe { vnni::tile(self, &qx, r, m, b, v, acc) },
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx2 => unsafe { avx2::tile(self, &qx, r, m, b, v, acc) },
                // AMX not granted (only the tests can ask for it then): the VNNI sums, which
                // every AMX CPU has.
                #[cfg(target_arch = "x86_64")]
                Kernel::Amx if is_x86_feature_detected!("avx512vnni") => unsafe { vnni::tile(self, &qx, r, m, b, v, acc) },
                _ => portable_tile(self, &qx, r, m, b, v, acc),
            },
            |r, c0, acc, row| {
                let c1 = c0 + row.len();
                vector::dequantise(acc, qx.zero[r], &self.col_sum[c0..c1], qx.scale[r], &self.scale[c0..c1], row)
            },
        )
    }
}

impl HostLinear for QuantLinear {
    fn in_features(&self) -> usize {
        self.k
    }

    fn out_features(&self) -> usize {
        self.n
    }

    fn forward_with(&self, x: &[f32], rows: usize, epilogue: Epilogue) -> Vec<f32> {
        self.forward_on(x, rows, epilogue, Kernel::best())
    }
}

/// Activations quantised per row.
pub(super) struct QuantRows {
    /// `[rows, kp]`, the padding 0 (it meets zero weights).
    pub(super) q: Vec<u8>,
    kp: usize,
    pub(super) scale: Vec<f32>,
    pub(super) zero: Vec<i32>,
}

impl QuantRows {
    pub(super) fn new(x: &[f32], rows: usize, k: usize, kp: usize) -> Self {
        let mut q = vec![0u8; rows * kp];
        let mut scale = vec![0f32; rows];
        let mut zero = vec![0i32; rows];
        q.par_chunks_mut(kp)
            .zip(scale.par_iter_mut().zip(zero.par_iter_mut()))
            .enumerate()
            .with_min_len(16)
            .for_each(|(r, (out, (s, z)))| (*s, *z) = quantise_row(&x[r * k..(r + 1) * k], &mut out[..k]));
        Self { q, kp, scale, zero }
    }

    /// The rows quantised as [`QuantRows::new`] does, in the order AMX loads them: for each
    /// 16 rows (the last ones zero past `rows`), their first 64 bytes (one tile, 1 KB in a row),
    /// then their next 64, and so on; rows of `ka` bytes (a multiple of 64), zero past `k`.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn new_tiled(x: &[f32], rows: usize, k: usize, ka: usize) -> Self {
        const TILE_ROWS: usize = 16;
        const TILE_BYTES: usize = 64;
        assert!(ka % TILE_BYTES == 0 && ka >= k);
        let tiles = rows.div_ceil(TILE_ROWS);
        let mut q: Vec<u8> = Vec::with_capacity(tiles * TILE_ROWS * ka);
        let mut scale = vec![0f32; rows];
        let mut zero = vec![0i32; rows];
        q.spare_capacity_mut()[..tiles * TILE_ROWS * ka]
            .par_chunks_mut(TILE_ROWS * ka)
            .zip(scale.par_chunks_mut(TILE_ROWS).zip(zero.par_chunks_mut(TILE_ROWS)))
            .enumerate()
            .for_each(|(t, (tile, (scale, zero)))| {
                let mut row = vec![0u8; ka];
                for i in 0..TILE_ROWS {
                    match x.get((t * TILE_ROWS + i) * k..(t * TILE_ROWS + i + 1) * k) {
                        Some(xr) if i < scale.len() => (scale[i], zero[i]) = quantise_row(xr, &mut row[..k]),
                        _ => row.fill(0),
                    }
                    for (s, piece) in row.chunks_exact(TILE_BYTES).enumerate() {
                        let to = &mut tile[(s * TILE_ROWS + i) * TILE_BYTES..][..TILE_BYTES];
                        for (o, &v) in to.iter_mut().zip(piece) {
                            o.write(v);
                        }
                    }
                }
            });
        // SAFETY: every row of every tile was written just above.
        unsafe { q.set_len(tiles * TILE_ROWS * ka) };
        Self { q, kp: ka, scale, zero }
    }
}

/// Scale and zero point for a row whose values lie in `lo..=hi` (`lo <= 0 <= hi`).
fn params(lo: f32, hi: f32) -> (f32, i32) {
    let s = (hi - lo) / 255.0;
    if !(s > 0.0 && s.is_finite()) {
        return (1.0, 0);
    }
    let z = (-lo / s).round_ties_even().clamp(0.0, 255.0) as i32;
    (s, z)
}

fn quantise_row(row: &[f32], out: &mut [u8]) -> (f32, i32) {
    let (lo, hi) = vector::range(row);
    let (s, z) = params(lo, hi);
    vector::quantise(row, 1.0 / s, z as f32, out);
    (s, z)
}

/// Which micro-kernel computes the sums; all give the same (exact) ones.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kernel {
    /// Intel AMX: `tdpbusd` on 16 x 64-byte tiles, 16,384 products per instruction
    /// ([`super::amx`]).
    Amx,
    /// AVX-512 VNNI: `vpdpbusd`, 64 products per instruction.
    Vnni,
    /// AVX2: inputs and weights widened to i16, `vpmaddwd` (16 products per instruction).
    Avx2,
    /// Plain Rust (what the compiler makes of it; slow: use f32 on such CPUs).
    Portable,
}

impl Kernel {
    /// The fastest this CPU (and, for AMX, the operating system) allows, chosen once.
    /// `DEBERTA_NER_INT8_KERNEL=vnni|avx2|portable` asks for a slower one, to compare.
    pub fn best() -> Kernel {
        static BEST: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            let asked = std::env::var("DEBERTA_NER_INT8_KERNEL").unwrap_or_default();
            #[cfg(target_arch = "x86_64")]
            {
                let vnni = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni");
                let avx2 = is_x86_feature_detected!("avx2");
                // AMX only when not asked for another kernel: asking is what requests the
                // tile state from the operating system.
                let amx = || !matches!(asked.as_str(), "vnni" | "avx2" | "portable") && super::amx::int8_available();
                Self::choose(&asked, amx(), vnni, avx2)
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                let _ = asked;
                Kernel::Portable
            }
        })
    }

    /// The kernel for a request (`DEBERTA_NER_INT8_KERNEL`) and what the CPU has: the one
    /// asked for where the CPU has it, else the fastest it has.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn choose(asked: &str, amx: bool, vnni: bool, avx2: bool) -> Kernel {
        match asked {
            "portable" => return Kernel::Portable,
            "avx2" if avx2 => return Kernel::Avx2,
            "vnni" if vnni => return Kernel::Vnni,
            _ => {}
        }
        if amx {
            Kernel::Amx
        } else if vnni {
            Kernel::Vnni
        } else if avx2 {
            Kernel::Avx2
        } else {
            Kernel::Portable
        }
    }

    /// The kernel's name, as [`crate::cpu_kernels`] reports it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "amx",
            Kernel::Vnni => "avx512-vnni",
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }
}

/// The same sums as the VNNI kernel, in plain Rust.
fn portable_tile(l: &QuantLinear, qx: &QuantRows, r: usize, m: usize, b: usize, v: usize, acc: &mut [[i32; BLOCK * NV]; MR]) {
    let kp = l.kp;
    for (i, acc) in acc.iter_mut().enumerate().take(m) {
        let a = &qx.q[(r + i) * qx.kp..(r + i) * qx.kp + kp];
        for bv in 0..v {
            let w = &l.packed[(b + bv) * BLOCK * kp..(b + bv + 1) * BLOCK * kp];
            let acc = &mut acc[bv * BLOCK..(bv + 1) * BLOCK];
            for (k4, w) in w.chunks_exact(BLOCK * 4).enumerate() {
                let a = &a[k4 * 4..k4 * 4 + 4];
                for (c, w) in w.chunks_exact(4).enumerate() {
                    acc[c] += a[0] as i32 * w[0] as i32
                        + a[1] as i32 * w[1] as i32
                        + a[2] as i32 * w[2] as i32
                        + a[3] as i32 * w[3] as i32;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    use super::{QuantLinear, QuantRows};
    use crate::linear::{BLOCK, MR, NV};

    /// Dispatches to the micro-kernel for `m` rows and `v` blocks.
    ///
    /// # Safety
    /// The CPU has AVX-512F and AVX-512 VNNI; `r + m` rows exist in `qx`, blocks `b + v` in `l`.
    pub(super) unsafe fn tile(l: &QuantLinear, qx: &QuantRows, r: usize, m: usize, b: usize, v: usize, acc: &mut [[i32; BLOCK * NV]; MR]) {
        tile_shape!(kernel, m, v, (l, qx, r, b, acc))
    }

    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn kernel<const M: usize, const V: usize>(l: &QuantLinear, qx: &QuantRows, r: usize, b: usize, out: &mut [[i32; BLOCK * NV]; MR]) {
        let kp = l.kp;
        let mut acc = [[_mm512_setzero_si512(); V]; M];
        let w = l.packed.as_ptr().add(b * BLOCK * kp);
        let a = qx.q.as_ptr().add(r * qx.kp);
        for k4 in 0..kp / 4 {
            let mut wv = [_mm512_setzero_si512(); V];
            for (j, wv) in wv.iter_mut().enumerate() {
                *wv = _mm512_loadu_si512(w.add(j * BLOCK * kp + k4 * BLOCK * 4).cast());
            }
            for (i, acc) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_epi32(a.add(i * qx.kp + k4 * 4).cast::<i32>().read_unaligned());
                for (acc, wv) in acc.iter_mut().zip(&wv) {
                    *acc = _mm512_dpbusd_epi32(*acc, av, *wv);
                }
            }
        }
        for (acc, out) in acc.iter().zip(out.iter_mut()) {
            for (j, acc) in acc.iter().enumerate() {
                _mm512_storeu_si512(out.as_mut_ptr().add(j * BLOCK).cast(), *acc);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{QuantLinear, QuantRows};
    use crate::linear::{BLOCK, MR, NV};

    /// Rows `r..r + m`, blocks `b..b + v`, two rows at a time.
    ///
    /// # Safety
    /// The CPU has AVX2; `r + m` rows exist in `qx`, blocks `b + v` in `l`.
    pub(super) unsafe fn tile(l: &QuantLinear, qx: &QuantRows, r: usize, m: usize, b: usize, v: usize, acc: &mut [[i32; BLOCK * NV]; MR]) {
        for bv in 0..v {
            let mut i = 0;
            while i < m {
                if m - i >= 2 {
                    kernel::<2>(l, qx, r + i, b + bv, bv, i, acc);
                    i += 2;
                } else {
                    kernel::<1>(l, qx, r + i, b + bv, bv, i, acc);
                    i += 1;
                }
            }
        }
    }

    /// `M` rows from `r` times block `b`, into `out[i0..i0 + M][bv * 16..]`.
    ///
    /// Each 64-byte group of the packed block (16 channels x 4 inputs) is widened to i16 in four
    /// vectors of 4 channels; `vpmaddwd` against the row's 4 inputs (widened, repeated) gives,
    /// per channel, the sums of inputs 0-1 and 2-3, added at the end.
    #[target_feature(enable = "avx2")]
    unsafe fn kernel<const M: usize>(l: &QuantLinear, qx: &QuantRows, r: usize, b: usize, bv: usize, i0: usize, out: &mut [[i32; BLOCK * NV]; MR]) {
        let kp = l.kp;
        let mut acc = [[_mm256_setzero_si256(); 4]; M];
        let w = l.packed.as_ptr().add(b * BLOCK * kp);
        for k4 in 0..kp / 4 {
            let g = w.add(k4 * BLOCK * 4);
            let wv = [0, 1, 2, 3].map(|q| _mm256_cvtepi8_epi16(_mm_loadu_si128(g.add(16 * q).cast())));
            for (i, acc) in acc.iter_mut().enumerate() {
                let a4 = qx.q.as_ptr().add((r + i) * qx.kp + k4 * 4).cast::<i32>().read_unaligned();
                let av = _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(a4)));
                for (acc, wv) in acc.iter_mut().zip(&wv) {
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(*wv, av));
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            let mut pairs = [0i32; 32];
            for (q, acc) in acc.iter().enumerate() {
                _mm256_storeu_si256(pairs.as_mut_ptr().add(8 * q).cast(), *acc);
            }
            for c in 0..BLOCK {
                out[i0 + i][bv * BLOCK + c] = pairs[2 * c] + pairs[2 * c + 1];
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

    /// The exact integer result the quantisation defines, computed naively.
    fn reference(l: &QuantLinear, w: &[f32], x: &[f32], rows: usize) -> Vec<f32> {
        let (n, k) = (l.n, l.k);
        let mut y = vec![0f32; rows * n];
        for r in 0..rows {
            let xr = &x[r * k..(r + 1) * k];
            let (lo, hi) = vector::range(xr);
            let (sx, zx) = params(lo, hi);
            for j in 0..n {
                let wr = &w[j * k..(j + 1) * k];
                let amax = wr.iter().fold(0f32, |m, v| m.max(v.abs()));
                let sw = if amax > 0.0 { amax / 127.0 } else { 1.0 };
                let mut s = 0i64;
                for i in 0..k {
                    let qa = (xr[i].mul_add(1.0 / sx, zx as f32).round_ties_even().clamp(0.0, 255.0) as i64) - zx as i64;
                    let qw = (wr[i] / sw).round_ties_even().clamp(-127.0, 127.0) as i64;
                    s += qa * qw;
                }
                y[r * n + j] = s as f32 * (sx * sw);
            }
        }
        y
    }

    fn check(rows: usize, n: usize, k: usize) {
        let mut seed = (rows * 1000 + n * 10 + k) as u64;
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) * 0.1).collect();
        let x: Vec<f32> = (0..rows * k).map(|_| lcg(&mut seed) * 3.0 + 0.5).collect();
        let l = QuantLinear::new(&w, n, k);
        let y = l.forward(&x, rows);
        assert_eq!(y, l.forward_on(&x, rows, Epilogue::None, Kernel::Portable), "the portable kernel gives the same sums");
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") {
            assert_eq!(y, l.forward_on(&x, rows, Epilogue::None, Kernel::Avx2), "the AVX2 kernel gives the same sums");
        }
        let bias: Vec<f32> = (0..n).map(|j| j as f32 / n as f32 - 0.5).collect();
        let fused = l.forward_bias_gelu(&x, rows, &bias);
        for (i, (&f, &y)) in fused.iter().zip(&y).enumerate() {
            assert_eq!(f, vector::gelu(y + bias[i % n]));
        }
        let want = reference(&l, &w, &x, rows);
        for (i, (a, b)) in y.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "rows {rows} n {n} k {k} at {i}: {a} vs {b}");
        }
        // And close to f32 (a loose bound: int8 is an approximation).
        for r in 0..rows {
            for j in 0..n {
                let exact: f32 = (0..k).map(|i| x[r * k + i] * w[j * k + i]).sum();
                let err = (y[r * n + j] - exact).abs();
                assert!(err < 0.05 * (k as f32).sqrt(), "far from f32: {} vs {exact}", y[r * n + j]);
            }
        }
    }

    #[test]
    fn sums_are_the_exact_quantised_ones() {
        for &(rows, n, k) in &[(1, 16, 4), (7, 64, 768), (13, 80, 30), (50, 100, 97), (6, 3, 5), (0, 16, 8)] {
            check(rows, n, k);
        }
    }

    /// Not a test: `cargo test --release -p biomed-ner-engine int8_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn int8_speed() {
        use candle_core::{Device, Tensor};
        let (rows, n, k) = (224, 3072, 768);
        let mut seed = 1;
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
        let x: Vec<f32> = (0..rows * k).map(|_| lcg(&mut seed)).collect();
        let l = QuantLinear::new(&w, n, k);
        let (wt, xt) = (Tensor::from_vec(w.clone(), (n, k), &Device::Cpu).unwrap(), Tensor::from_vec(x.clone(), (rows, k), &Device::Cpu).unwrap());
        for round in 0..3 {
            let t = std::time::Instant::now();
            for _ in 0..20 {
                std::hint::black_box(l.forward(&x, rows));
            }
            let int8 = t.elapsed().as_secs_f64() / 20.0;
            let t = std::time::Instant::now();
            for _ in 0..20 {
                std::hint::black_box(xt.matmul(&wt.t().unwrap()).unwrap());
            }
            let f32 = t.elapsed().as_secs_f64() / 20.0;
            let gmac = (rows * n * k) as f64 / 1e9;
            println!("round {round}: int8 {:.2} ms ({:.0} GMAC/s), f32 {:.2} ms ({:.0} GMAC/s)", int8 * 1e3, gmac / int8, f32 * 1e3, gmac / f32);
        }
    }

    #[test]
    fn a_kernel_asked_for_is_used_where_the_cpu_has_it() {
        assert_eq!(Kernel::choose("", true, true, true), Kernel::Amx);
        assert_eq!(Kernel::choose("", false, true, true), Kernel::Vnni);
        assert_eq!(Kernel::choose("vnni", true, true, true), Kernel::Vnni);
        assert_eq!(Kernel::choose("vnni", false, false, true), Kernel::Avx2);
        assert_eq!(Kernel::choose("avx2", true, true, true), Kernel::Avx2);
        assert_eq!(Kernel::choose("portable", true, true, true), Kernel::Portable);
        assert_eq!(Kernel::choose("amx", false, false, false), Kernel::Portable);
        println!("int8 kernel on this machine: {}", Kernel::best().name());
    }

    #[test]
    fn rows_do_not_depend_on_their_batch() {
        let (n, k) = (48, 40);
        let mut seed = 7;
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
        let x: Vec<f32> = (0..20 * k).map(|_| lcg(&mut seed)).collect();
        let l = QuantLinear::new(&w, n, k);
        let all = l.forward(&x, 20);
        for r in 0..20 {
            assert_eq!(l.forward(&x[r * k..(r + 1) * k], 1), all[r * n..(r + 1) * n]);
        }
    }

    #[test]
    fn zero_and_constant_rows() {
        let (n, k) = (16, 8);
        let w = vec![0.5f32; n * k];
        let l = QuantLinear::new(&w, n, k);
        assert!(l.forward(&[0.0; 8], 1).iter().all(|&v| v == 0.0));
        let y = l.forward(&[2.0; 8], 1);
        assert!(y.iter().all(|&v| (v - 8.0).abs() < 0.05), "{y:?}");
        let zero = QuantLinear::new(&vec![0.0; n * k], n, k);
        assert!(zero.forward(&[1.0; 8], 1).iter().all(|&v| v == 0.0));
    }
}
