//! Intel AMX for the int8 and bf16 projections: `tdpbusd` on tiles, with the same
//! quantisation, packing and exact i32 sums as the AVX-512 VNNI kernel (see [`super::int8`]),
//! and `tdpbf16ps` on the AVX-512 BF16 kernel's packing (see [`super::bf16`]).
//!
//! `tdpbusd C, A, B` adds to each i32 `C[m][c]` the products of the 4-byte groups `A[m][4q..4q+4]`
//! (u8) and `B[q][4c..4c+4]` (i8), `q` over B's rows: the sum `vpdpbusd` makes, over a 16-row by
//! 64-byte tile. A row of B is therefore 16 output channels' 4 consecutive weights, which is
//! exactly one 64-byte group of the VNNI packing (`[block][kp / 4][16][4]`): a block's weights
//! for 64 inputs are one contiguous 16 x 64-byte B tile, and the packing serves both kernels.
//!
//! Inputs are taken 64 at a time. When `k` is not a multiple of 64, the activations are padded
//! with zeros to the next multiple and the last B tile of a block reads on into the next block
//! (or into the zero tail the packing is given, after the last): those weights meet zero
//! inputs, so the sums are unchanged and exactly the VNNI kernel's. Row counts are padded to 16
//! with zero rows whose sums are not written out.
//!
//! The inputs are laid out in the order the tiles load them (`QuantRows::new_tiled`): for each
//! 16 rows, their first 64 bytes as one contiguous 1 KB tile, then their next 64 bytes, and so
//! on, since a tile loads faster from 1 KB in a row than from 16 rows far apart. A parallel task
//! takes 32 rows by 8 blocks, 512 bytes of inputs at a time (so that they stay in the
//! first-level cache while they meet the 8 blocks), its sums carried over in memory from one
//! pass to the next, and writes its outputs (never zeroed before) once, 128 channels a row.
//!
//! `tdpbf16ps` is the same product on bf16 pairs: a B row is 16 channels' 2 consecutive
//! weights, one 64-byte group of the bf16 packing, whose inputs the layer pads to a multiple of
//! 32 (so no tile reads past a block). It sums in f32 like `vdpbf16ps` but in another order and
//! with denormal inputs taken as zero, so results agree to f32 rounding, not bit for bit.
//!
//! AMX instructions are issued with `asm!` (the intrinsics are not stable Rust); the tile
//! registers are invisible to the compiler, which never uses them, so the tiles keep their
//! contents from one `asm!` block to the next on the same thread.
//!
//! Linux only grants a process the (large) tile state on request, `arch_prctl
//! (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, made once here and checked with
//! `ARCH_GET_XCOMP_PERM`; the grant covers all the process's threads. Where the CPU lacks
//! AMX-INT8 or the kernel refuses, the int8 layers keep the VNNI (or AVX2, portable) kernel;
//! without AMX-BF16, the bf16 layers keep the AVX-512 BF16 kernel.

use std::arch::asm;
use std::arch::x86_64::__cpuid_count;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{BLOCK, Epilogue, OutPtr};

/// Rows of a tile (the most AMX allows).
const TILE_ROWS: usize = 16;
/// Bytes of a tile row: 64 inputs of u8 in A, 16 channels x 4 inputs of i8 in B.
const TILE_BYTES: usize = 64;
/// Rows of one micro-kernel call: two A tiles.
const MT: usize = 2 * TILE_ROWS;
/// Blocks (of 16 channels) of one micro-kernel call: two B tiles.
const NT: usize = 2;
/// Blocks of one parallel task: its A tiles are reused across them while in cache.
const GROUP: usize = 8;
/// Tiles of inputs (64 bytes of each row) one pass over a task's blocks takes: 32 rows x 512
/// bytes of input (16 KB) and a block pair's 16 KB of weights, beside the task's sums.
const CHUNK: usize = 8;
/// Zero bytes after the last packed block, read by the last block's last B tile when `k` is
/// not a multiple of 64 (at most 15 rows of 64 bytes past the block).
pub(super) const PACK_TAIL: usize = TILE_ROWS * TILE_BYTES;

/// Whether this process may use AMX-INT8: the CPU has AMX-TILE and AMX-INT8 and the kernel
/// granted the tile state (asked on the first call).
pub(super) fn int8_available() -> bool {
    cpu_has(25) && tiles_granted()
}

/// Whether this process may use AMX-BF16 (as [`int8_available`]).
pub(super) fn bf16_available() -> bool {
    cpu_has(22) && tiles_granted()
}

/// CPUID leaf 7 EDX: bit 24 AMX-TILE, and `bit` (22 AMX-BF16, 25 AMX-INT8).
fn cpu_has(bit: u32) -> bool {
    // Leaf 7 is valid where leaf 0 reports it.
    if __cpuid_count(0, 0).eax < 7 {
        return false;
    }
    let edx = __cpuid_count(7, 0).edx;
    edx & (1 << 24) != 0 && edx & (1 << bit) != 0
}

/// The tile state, asked for once per process where the CPU has AMX-TILE
/// (`DEBERTA_NER_NO_AMX` set: not asked, as on a CPU without AMX).
fn tiles_granted() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        std::env::var_os("DEBERTA_NER_NO_AMX").is_none() && cpu_has(24) && request_tile_permission()
    })
}

/// Asks Linux for the tile data state, then checks that it is granted.
#[cfg(target_os = "linux")]
fn request_tile_permission() -> bool {
    const ARCH_GET_XCOMP_PERM: libc::c_long = 0x1022;
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these codes reads or writes only the u64 it is given.
    unsafe {
        // Refused (older kernels, or a seccomp filter): the check below says no.
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        );
        let mut granted: u64 = 0;
        let rc = libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_GET_XCOMP_PERM,
            &mut granted as *mut u64,
        );
        rc == 0 && granted & (1 << XFEATURE_XTILEDATA) != 0
    }
}

/// Other systems: not used (they need no request, but are not tested here).
#[cfg(not(target_os = "linux"))]
fn request_tile_permission() -> bool {
    false
}

/// The tile configuration (`ldtilecfg`'s 64 bytes): palette 1, tiles 0-7 all 16 rows of 64
/// bytes. Tiles 0-3 hold sums (rows 0-15 and 16-31 by blocks 0 and 1), 4-5 inputs, 6-7 weights.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new() -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        for t in 0..8 {
            c[16 + 2 * t..18 + 2 * t].copy_from_slice(&(TILE_BYTES as u16).to_le_bytes());
            c[48 + t] = TILE_ROWS as u8;
        }
        Self(c)
    }
}

/// The sums of one task: [`MT`] rows by [`GROUP`] blocks (i32 or f32), each micro-kernel call
/// storing its [`NT`] blocks' columns.
#[repr(C, align(64))]
struct Sums<T>([[T; GROUP * BLOCK]; MT]);

/// Bytes of an input row of `k` int8 values on AMX: whole tiles.
pub(super) fn int8_row_bytes(k: usize) -> usize {
    k.div_ceil(TILE_BYTES) * TILE_BYTES
}

/// Input rows the AMX kernel reads for `rows` rows: whole tiles (the rest zeros).
pub(super) fn padded_rows(rows: usize) -> usize {
    rows.div_ceil(TILE_ROWS) * TILE_ROWS
}

/// `x @ w^T` for an int8 layer on AMX, with `epilogue` applied to each tile: `packed` is its
/// `[blocks][kp / 4][16][4]` int8 packing with the zero tail [`PACK_TAIL`], `qx` the quantised
/// input, [`padded_rows`] rows of [`int8_row_bytes`] bytes in tile order (see
/// `QuantRows::new_tiled`); `finish(row, c0, sums, out)` turns a row's i32 sums from column
/// `c0` into its outputs, writing every one of them.
///
/// # Safety
/// [`int8_available`] returned true.
pub(super) unsafe fn forward_int8(
    packed: &[i8],
    n: usize,
    kp: usize,
    qx: &[u8],
    rows: usize,
    epilogue: Epilogue,
    finish: impl Fn(usize, usize, &[i32], &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let ka = qx.len() / padded_rows(rows).max(1);
    assert!(ka % TILE_BYTES == 0 && qx.len() >= padded_rows(rows) * ka);
    let weights = Weights {
        packed: packed.as_ptr().cast(),
        block_bytes: BLOCK * kp,
        blocks: n.div_ceil(BLOCK),
    };
    // SAFETY: `qx` has whole tiles of rows of `ka` bytes; a block's reads past `kp` stay
    // within the next block or the packing's zero tail ([`PACK_TAIL`]).
    unsafe { run::<false, i32>(qx.as_ptr(), ka, rows, n, &weights, epilogue, finish) }
}

/// `x @ w^T` for a bf16 layer on AMX: `packed` is its `[blocks][kp / 2][16][2]` bf16 packing,
/// `kp` a multiple of 32.
///
/// # Safety
/// [`bf16_available`] returned true.
pub(super) unsafe fn forward_bf16(
    packed: &[u16],
    n: usize,
    k: usize,
    kp: usize,
    x: &[f32],
    rows: usize,
    epilogue: Epilogue,
) -> Vec<f32> {
    assert!(
        kp % (TILE_BYTES / 2) == 0 && kp >= k && packed.len() >= n.div_ceil(BLOCK) * BLOCK * kp
    );
    // The inputs in tile order (as `QuantRows::new_tiled` lays out bytes): 32 bf16 values make
    // a tile row of 64 bytes.
    const PER_ROW: usize = TILE_BYTES / 2;
    let mut xb = vec![0u16; rows.div_ceil(TILE_ROWS) * TILE_ROWS * kp];
    let vector = is_x86_feature_detected!("avx512bf16");
    xb.par_chunks_mut(TILE_ROWS * kp).enumerate().for_each(|(t, tile_rows)| {
        for i in 0..TILE_ROWS.min(rows - t * TILE_ROWS) {
            let r = t * TILE_ROWS + i;
            let row = &x[r * k..(r + 1) * k];
            for (s, piece) in row.chunks(PER_ROW).enumerate() {
                let to = &mut tile_rows[(s * TILE_ROWS + i) * PER_ROW..][..PER_ROW];
                if vector {
                    // SAFETY: the CPU has AVX-512 BF16 (checked above).
                    unsafe { to_bf16_avx512(piece, to) };
                } else {
                    for (o, &v) in to.iter_mut().zip(piece) {
                        *o = half::bf16::from_f32(v).to_bits();
                    }
                }
            }
        }
    });
    let weights = Weights {
        packed: packed.as_ptr().cast(),
        block_bytes: BLOCK * kp * 2,
        blocks: n.div_ceil(BLOCK),
    };
    // SAFETY: `xb` has whole tiles of rows of `2 * kp` bytes; blocks are whole tiles of inputs.
    unsafe {
        run::<true, f32>(
            xb.as_ptr().cast(),
            2 * kp,
            rows,
            n,
            &weights,
            epilogue,
            |_, _, acc, row| {
                for (o, &a) in row.iter_mut().zip(acc) {
                    o.write(a);
                }
            },
        )
    }
}

/// Up to 32 values to bf16 (rounded to nearest even) with `vcvtne2ps2bf16`; `out` past the
/// values is left as it is. Denormal inputs become zero, as `tdpbf16ps` reads them anyway, so
/// the products equal those of the scalar conversion.
#[target_feature(enable = "avx512f,avx512bf16")]
fn to_bf16_avx512(x: &[f32], out: &mut [u16]) {
    use std::arch::x86_64::*;
    assert!(x.len() <= 32 && out.len() >= x.len());
    let (n0, n1) = (x.len().min(16), x.len().saturating_sub(16));
    // SAFETY: the masked loads read only `x`'s values; the store writes `out`'s first 32
    // values only where `x` has them (a mask of `x.len()` lanes).
    unsafe {
        let lo = _mm512_maskz_loadu_ps(((1u32 << n0) - 1) as u16, x.as_ptr());
        let hi = _mm512_maskz_loadu_ps(((1u32 << n1) - 1) as u16, x.as_ptr().wrapping_add(16));
        let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_mask_storeu_epi16(out.as_mut_ptr().cast(), ((1u64 << x.len()) - 1) as u32, v);
    }
}

/// A layer's packed weights, as bytes: `blocks` blocks of `block_bytes`.
struct Weights {
    packed: *const u8,
    block_bytes: usize,
    blocks: usize,
}

// SAFETY: read only, from a buffer that outlives the product.
unsafe impl Sync for Weights {}

/// The product of `rows` input rows (`a`: rows of `ka` bytes, a multiple of 64, in tile order,
/// see `QuantRows::new_tiled`) by the weights, with `tdpbf16ps` if `BF16` (sums `T = f32`)
/// else `tdpbusd` (`T = i32`): `finish(row, c0, sums, out)` turns each row's sums into its
/// outputs from channel `c0` on (writing every one: the outputs are not initialised before),
/// then `epilogue`.
///
/// # Safety
/// AMX is granted for the instruction; `a` holds `ceil(rows / 16) * 16` rows of `ka` bytes in
/// tile order; each block has `ka * 16` readable bytes from its start.
unsafe fn run<const BF16: bool, T: Copy + Default + Send>(
    a: *const u8,
    ka: usize,
    rows: usize,
    n: usize,
    w: &Weights,
    epilogue: Epilogue,
    finish: impl Fn(usize, usize, &[T], &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let groups = w.blocks.div_ceil(GROUP);
    let row_tiles = rows.div_ceil(MT);
    // Not zeroed first: every output is written once, by its task's `finish` (zeroing it, or
    // the page faults of memory fresh from the system, cost as much as the product here).
    let mut y: Vec<f32> = Vec::with_capacity(rows * n);
    let out = OutPtr(y.as_mut_ptr());
    let config = TileConfig::new();
    let a = a as usize;
    (0..row_tiles * groups).into_par_iter().for_each(|t| {
        let (r, b0) = ((t % row_tiles) * MT, (t / row_tiles) * GROUP);
        let (m, b1) = (MT.min(rows - r), (b0 + GROUP).min(w.blocks));
        let mut sums = Sums([[T::default(); GROUP * BLOCK]; MT]);
        // SAFETY: AMX is granted (the caller); the tiles are this thread's, and nothing else
        // runs on it until `tilerelease` (the task makes no rayon calls).
        unsafe { asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly)) };
        // Rows `r..r + 32` are two tiles of rows, `16 * ka` bytes each in tile order.
        let a = (a as *const u8).wrapping_add(r * ka);
        let steps = ka / TILE_BYTES;
        let a1 = a.wrapping_add(steps * TILE_ROWS * TILE_BYTES);
        // Inputs are taken [`CHUNK`] tile rows at a time, so that the rows' share of them stays
        // in the first-level cache while it meets every block of the group; the sums carry over.
        let mut k0 = 0;
        while k0 < steps {
            let kn = CHUNK.min(steps - k0);
            let mut b = b0;
            while b < b1 {
                let v = NT.min(b1 - b);
                let wb = w
                    .packed
                    .wrapping_add(b * w.block_bytes + k0 * TILE_ROWS * TILE_BYTES);
                let s = sums
                    .0
                    .as_mut_ptr()
                    .cast::<T>()
                    .wrapping_add((b - b0) * BLOCK)
                    .cast::<u8>();
                let (a, a1) = (
                    a.wrapping_add(k0 * TILE_ROWS * TILE_BYTES),
                    a1.wrapping_add(k0 * TILE_ROWS * TILE_BYTES),
                );
                let more = k0 > 0;
                // SAFETY: `a` (and `a1`) hold a tile of rows with `kn` tiles of inputs; blocks
                // `b..b + v` exist with `ka * 16` readable bytes each from their start (the
                // caller); `s` has room for 32 rows of `v * 16` sums at a row stride of
                // `GROUP * 16`.
                unsafe {
                    match (m > TILE_ROWS, v == NT) {
                        (true, true) => {
                            kernel::<BF16, true, true>(a, a1, wb, w.block_bytes, kn, s, more)
                        }
                        (true, false) => {
                            kernel::<BF16, true, false>(a, a1, wb, w.block_bytes, kn, s, more)
                        }
                        (false, true) => {
                            kernel::<BF16, false, true>(a, a1, wb, w.block_bytes, kn, s, more)
                        }
                        (false, false) => {
                            kernel::<BF16, false, false>(a, a1, wb, w.block_bytes, kn, s, more)
                        }
                    }
                }
                b += v;
            }
            k0 += kn;
        }
        // The group's outputs, row by row: one call for its (up to) 128 channels.
        let (c0, c1) = (b0 * BLOCK, (b1 * BLOCK).min(n));
        for (i, acc) in sums.0.iter().enumerate().take(m) {
            // SAFETY: tasks write disjoint rows x channels rectangles of `y`, which outlives
            // them.
            let at = out.at((r + i) * n + c0);
            // SAFETY: as above; `finish` writes every value of the slice, after which it is
            // initialised f32s.
            finish(r + i, c0, &acc[..c1 - c0], unsafe {
                std::slice::from_raw_parts_mut(at.cast::<MaybeUninit<f32>>(), c1 - c0)
            });
            epilogue.apply(unsafe { std::slice::from_raw_parts_mut(at, c1 - c0) }, c0);
        }
        // SAFETY: releases this thread's tile state, configured above.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    });
    // SAFETY: the tasks covered every row and channel, each written by `finish`.
    unsafe { y.set_len(rows * n) };
    y
}

/// `tdpbf16ps` if `$bf16` else `tdpbusd`, on the tiles `$regs`.
macro_rules! dot {
    ($bf16:expr, $regs:literal) => {
        if $bf16 {
            asm!(concat!("tdpbf16ps ", $regs), options(nostack, nomem))
        } else {
            asm!(concat!("tdpbusd ", $regs), options(nostack, nomem))
        }
    };
}

/// The sums of rows `a` (16 rows, and `a1`'s 16 more with `TWO_A`) by one block `w` (two with
/// `TWO_B`, the second `wstride` bytes on) over `steps` x 64 bytes of inputs, into `sums` (32
/// rows of 16 or 32 values of 4 bytes, at a row stride of `GROUP * 16` values), added to the
/// sums already there if `more`.
///
/// # Safety
/// The tiles are configured ([`TileConfig`]); `a` (and `a1`) have a tile of rows of `steps * 64`
/// bytes in tile order (`QuantRows::new_tiled`); `w` (and `w + wstride`) has `steps * 1024`
/// readable bytes.
#[inline(always)]
unsafe fn kernel<const BF16: bool, const TWO_A: bool, const TWO_B: bool>(
    a: *const u8,
    a1: *const u8,
    w: *const u8,
    wstride: usize,
    steps: usize,
    sums: *mut u8,
    more: bool,
) {
    let sa = TILE_BYTES;
    let out = sums.cast::<u32>();
    let stride = GROUP * BLOCK * 4;
    if more {
        asm!("tileloadd tmm0, [{p} + {s}*1]", p = in(reg) out, s = in(reg) stride, options(nostack, readonly));
        if TWO_B {
            asm!("tileloadd tmm1, [{p} + {s}*1]", p = in(reg) out.add(BLOCK), s = in(reg) stride, options(nostack, readonly));
        }
        if TWO_A {
            asm!("tileloadd tmm2, [{p} + {s}*1]", p = in(reg) out.add(TILE_ROWS * GROUP * BLOCK), s = in(reg) stride, options(nostack, readonly));
            if TWO_B {
                asm!("tileloadd tmm3, [{p} + {s}*1]", p = in(reg) out.add(TILE_ROWS * GROUP * BLOCK + BLOCK), s = in(reg) stride, options(nostack, readonly));
            }
        }
    } else {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
    }
    let w1 = w.add(wstride);
    for s in 0..steps {
        let (ak, bk) = (s * TILE_ROWS * TILE_BYTES, s * TILE_ROWS * TILE_BYTES);
        asm!("tileloadd tmm4, [{a} + {sa}*1]", a = in(reg) a.add(ak), sa = in(reg) sa, options(nostack, readonly));
        asm!("tileloadd tmm6, [{w} + {sb}*1]", w = in(reg) w.add(bk), sb = in(reg) TILE_BYTES, options(nostack, readonly));
        dot!(BF16, "tmm0, tmm4, tmm6");
        if TWO_B {
            asm!("tileloadd tmm7, [{w} + {sb}*1]", w = in(reg) w1.add(bk), sb = in(reg) TILE_BYTES, options(nostack, readonly));
            dot!(BF16, "tmm1, tmm4, tmm7");
        }
        if TWO_A {
            asm!("tileloadd tmm5, [{a} + {sa}*1]", a = in(reg) a1.add(ak), sa = in(reg) sa, options(nostack, readonly));
            dot!(BF16, "tmm2, tmm5, tmm6");
            if TWO_B {
                dot!(BF16, "tmm3, tmm5, tmm7");
            }
        }
    }
    asm!("tilestored [{p} + {s}*1], tmm0", p = in(reg) out, s = in(reg) stride, options(nostack));
    if TWO_B {
        asm!("tilestored [{p} + {s}*1], tmm1", p = in(reg) out.add(BLOCK), s = in(reg) stride, options(nostack));
    }
    if TWO_A {
        asm!("tilestored [{p} + {s}*1], tmm2", p = in(reg) out.add(TILE_ROWS * GROUP * BLOCK), s = in(reg) stride, options(nostack));
        if TWO_B {
            asm!("tilestored [{p} + {s}*1], tmm3", p = in(reg) out.add(TILE_ROWS * GROUP * BLOCK + BLOCK), s = in(reg) stride, options(nostack));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::int8::{Kernel, QuantLinear};

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// The kernel AMX is compared with: VNNI where the CPU has it (every AMX CPU does).
    fn reference_kernel() -> Kernel {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni") {
            Kernel::Vnni
        } else {
            Kernel::Portable
        }
    }

    /// Outputs (hence the i32 sums behind them) identical to the VNNI kernel's, bit for bit,
    /// on shapes with rows, channels and inputs that are and are not multiples of the tiles.
    #[test]
    fn amx_sums_are_the_vnni_ones() {
        if !int8_available() {
            println!("AMX not available: skipped");
            return;
        }
        println!(
            "AMX-INT8 available: comparing with {:?}",
            reference_kernel()
        );
        let shapes = [
            (1, 16, 4),
            (1, 768, 768),
            (7, 64, 768),
            (13, 80, 30),
            (16, 32, 64),
            (17, 48, 65),
            (31, 16, 128),
            (32, 32, 64),
            (33, 100, 97),
            (50, 3, 5),
            (64, 3072, 768),
            (100, 768, 3072),
            (224, 200, 190),
            (0, 16, 8),
        ];
        for &(rows, n, k) in &shapes {
            let mut seed = (rows * 7919 + n * 31 + k) as u64;
            let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) * 0.1).collect();
            let x: Vec<f32> = (0..rows * k).map(|_| lcg(&mut seed) * 3.0 + 0.5).collect();
            let l = QuantLinear::new(&w, n, k);
            let want = l.forward_on(&x, rows, Epilogue::None, reference_kernel());
            let got = l.forward_on(&x, rows, Epilogue::None, Kernel::Amx);
            assert!(
                got == want,
                "rows {rows} n {n} k {k}: AMX differs from {:?}",
                reference_kernel()
            );
            let bias: Vec<f32> = (0..n).map(|j| j as f32 / n as f32 - 0.5).collect();
            let want = l.forward_on(&x, rows, Epilogue::BiasGelu(&bias), reference_kernel());
            let got = l.forward_on(&x, rows, Epilogue::BiasGelu(&bias), Kernel::Amx);
            assert!(
                got == want,
                "rows {rows} n {n} k {k}: AMX with bias and GELU differs"
            );
        }
    }

    /// Extreme inputs: all-255 activations against all +127 and -127 weights (the largest sums).
    #[test]
    fn amx_extreme_values() {
        if !int8_available() {
            println!("AMX not available: skipped");
            return;
        }
        let (rows, n, k) = (20, 40, 3072);
        let mut w = vec![1f32; n * k];
        for (j, row) in w.chunks_mut(k).enumerate() {
            if j % 2 == 1 {
                row.iter_mut().for_each(|v| *v = -1.0);
            }
        }
        let x: Vec<f32> = (0..rows * k)
            .map(|i| {
                if i % 3 == 0 {
                    0.0
                } else {
                    1.0 + (i % 5) as f32
                }
            })
            .collect();
        let l = QuantLinear::new(&w, n, k);
        assert!(
            l.forward_on(&x, rows, Epilogue::None, Kernel::Amx)
                == l.forward_on(&x, rows, Epilogue::None, reference_kernel())
        );
    }

    /// Not a test: `cargo test --release -p biomed-ner-engine amx_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn amx_speed() {
        if !int8_available() {
            println!("AMX not available: skipped");
            return;
        }
        for (rows, n, k) in [
            (224, 3072, 768),
            (224, 768, 3072),
            (2048, 768, 768),
            (26, 3072, 768),
            (26, 768, 3072),
        ] {
            let mut seed = 1;
            // Twelve layers' weights, as a forward pass meets them (more than the caches hold).
            let layers: Vec<QuantLinear> = (0..12)
                .map(|_| {
                    let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
                    QuantLinear::new(&w, n, k)
                })
                .collect();
            let x: Vec<f32> = (0..rows * k).map(|_| lcg(&mut seed)).collect();
            for kernel in [Kernel::Vnni, Kernel::Amx] {
                for (name, count) in [("warm", 1), ("12 layers", 12)] {
                    let t = std::time::Instant::now();
                    let reps = 24 / count;
                    for _ in 0..reps {
                        for l in &layers[..count] {
                            std::hint::black_box(l.forward_on(&x, rows, Epilogue::None, kernel));
                        }
                    }
                    let s = t.elapsed().as_secs_f64() / 24.0;
                    let gmac = (rows * n * k) as f64 / 1e9;
                    println!(
                        "{rows}x{n}x{k} {kernel:?} {name}: {:.3} ms ({:.0} GMAC/s, weights {:.1} GB/s)",
                        s * 1e3,
                        gmac / s,
                        (n * k) as f64 / 1e9 / s
                    );
                }
            }
        }
    }
}
