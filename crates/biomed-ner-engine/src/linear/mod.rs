//! The encoder layers' projections on the CPU, with weights packed once at load for this
//! crate's own micro-kernels:
//!
//! - [`f32`]: `PackedLinear`, f32 with AVX-512 FMA (where the CPU has AVX-512F; elsewhere the
//!   layers keep candle's matmul);
//! - [`int8`]: `QuantLinear`, int8 weights and inputs with exact i32 sums (AVX-512 VNNI, or a
//!   portable kernel), and Intel AMX tiles where the CPU and operating system allow ([`amx`]).
//!
//! Both pack a weight `[n, k]` in blocks of 16 output channels (one 512-bit vector) and compute
//! a tile of up to [`MR`] rows by [`NV`] blocks with the sums in registers; tiles run side by side
//! on the caller's rayon pool, and an [`Epilogue`] (bias + GELU) runs on each tile while it is in
//! cache. Each output is one sum over `k` in a fixed order, whatever the number of rows or how
//! they were batched, so a note's results do not depend on its batch.

/// Calls `$kernel::<M, V>(args)` for a tile of `$m` rows (1 to [`MR`]) and `$v` blocks (1 to
/// [`NV`]): each shape is its own compiled micro-kernel, with its sums in registers.
macro_rules! tile_shape {
    ($kernel:ident, $m:expr, $v:expr, ($($arg:expr),*)) => {
        match $m {
            1 => tile_shape!(@v $kernel, 1, $v, ($($arg),*)),
            2 => tile_shape!(@v $kernel, 2, $v, ($($arg),*)),
            3 => tile_shape!(@v $kernel, 3, $v, ($($arg),*)),
            4 => tile_shape!(@v $kernel, 4, $v, ($($arg),*)),
            5 => tile_shape!(@v $kernel, 5, $v, ($($arg),*)),
            _ => tile_shape!(@v $kernel, 6, $v, ($($arg),*)),
        }
    };
    (@v $kernel:ident, $m:literal, $v:expr, ($($arg:expr),*)) => {
        match $v {
            1 => $kernel::<$m, 1>($($arg),*),
            2 => $kernel::<$m, 2>($($arg),*),
            3 => $kernel::<$m, 3>($($arg),*),
            _ => $kernel::<$m, 4>($($arg),*),
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod amx;
pub mod bf16;
pub mod f32;
pub mod int8;

pub use self::bf16::Bf16Linear;
pub use self::f32::PackedLinear;
pub use self::int8::QuantLinear;

use rayon::prelude::*;

/// Output channels per packed block (one 512-bit vector of f32 or i32).
const BLOCK: usize = 16;
/// Rows of one micro-kernel call.
const MR: usize = 6;
/// Blocks (of [`BLOCK`] channels) of one micro-kernel call.
const NV: usize = 4;
/// Rows of one parallel task: a slice of the inputs that stays in cache while it meets every
/// weight block of its column group.
const ROWS_PER_TASK: usize = 8 * MR;

/// A projection packed by this module: what the model calls, whatever the kernel.
pub trait HostLinear: Send + Sync {
    fn in_features(&self) -> usize;
    fn out_features(&self) -> usize;

    /// `x @ w^T` for `x` row-major `[rows, in]`: row-major `[rows, out]`, with `epilogue`
    /// applied to each tile.
    fn forward_with(&self, x: &[f32], rows: usize, epilogue: Epilogue) -> Vec<f32>;

    /// `x @ w^T`.
    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        self.forward_with(x, rows, Epilogue::None)
    }

    /// `gelu(x @ w^T + bias)`, bias and GELU applied to each tile while it is in cache.
    fn forward_bias_gelu(&self, x: &[f32], rows: usize, bias: &[f32]) -> Vec<f32> {
        assert_eq!(bias.len(), self.out_features(), "bias size");
        self.forward_with(x, rows, Epilogue::BiasGelu(bias))
    }
}

/// What a tile does to its results once they are in the output.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    None,
    /// `gelu(y + bias)`, the exact GELU of [`crate::vector::gelu`].
    BiasGelu(&'a [f32]),
}

impl Epilogue<'_> {
    /// Applies to `row`, the outputs from channel `c0` on.
    fn apply(self, row: &mut [f32], c0: usize) {
        if let Epilogue::BiasGelu(bias) = self {
            crate::vector::bias_gelu_in_place(row, &bias[c0..c0 + row.len()]);
        }
    }
}

/// The output buffer, written by tiles from rayon tasks.
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint rectangles of one buffer that outlives them (see
// `for_each_tile`).
unsafe impl Sync for OutPtr {}
unsafe impl Send for OutPtr {}

impl OutPtr {
    /// The output from element `offset` on.
    ///
    /// # Safety
    /// `offset` is inside the buffer.
    unsafe fn at(&self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}

/// Packs `w`, row-major `[n, k]`, in blocks of 16 output channels: in each block, for every
/// `group` consecutive inputs, the 16 channels' `group` values (`[ceil(n / 16)][kp / group]
/// [16][group]`, `kp` = `k` rounded up to `group`); the padding (channels past `n`, inputs past
/// `k`) is `T::default()`. Returns the packing and `kp`.
fn pack<T: Copy + Default + Send + Sync>(w: &[T], n: usize, k: usize, group: usize) -> (Vec<T>, usize) {
    assert_eq!(w.len(), n * k, "weight size");
    let kp = k.div_ceil(group) * group;
    let mut packed = vec![T::default(); n.div_ceil(BLOCK) * BLOCK * kp];
    packed.par_chunks_mut((BLOCK * kp).max(1)).enumerate().for_each(|(b, packed)| {
        for c in 0..BLOCK.min(n - b * BLOCK) {
            let j = b * BLOCK + c;
            for (i, &v) in w[j * k..(j + 1) * k].iter().enumerate() {
                packed[(i / group) * BLOCK * group + c * group + i % group] = v;
            }
        }
    });
    (packed, kp)
}

/// A `[rows, n]` product: calls `sums(r, m, b, v, acc)` for every tile (see
/// [`for_each_tile`]), then for each of its rows `finish(row, c0, sums, out)`, which turns the
/// row's sums into the outputs from channel `c0` on, and applies `epilogue` to them.
fn run_tiles<A: Copy + Default>(
    rows: usize,
    n: usize,
    epilogue: Epilogue,
    sums: impl Fn(usize, usize, usize, usize, &mut [[A; BLOCK * NV]; MR]) + Sync,
    finish: impl Fn(usize, usize, &[A], &mut [f32]) + Sync,
) -> Vec<f32> {
    let mut y = vec![0f32; rows * n];
    let out = OutPtr(y.as_mut_ptr());
    for_each_tile(rows, n, |r, m, b, v| {
        let mut acc = [[A::default(); BLOCK * NV]; MR];
        sums(r, m, b, v, &mut acc);
        let (c0, c1) = (b * BLOCK, ((b + v) * BLOCK).min(n));
        for (i, acc) in acc.iter().enumerate().take(m) {
            // SAFETY: tiles are disjoint rows x channel rectangles of `y`, which outlives them.
            let row = unsafe { std::slice::from_raw_parts_mut(out.at((r + i) * n + c0), c1 - c0) };
            finish(r + i, c0, &acc[..c1 - c0], row);
            epilogue.apply(row, c0);
        }
    });
    y
}

/// [`run_tiles`] for kernels whose sums are the outputs.
fn f32_tiles(
    rows: usize,
    n: usize,
    epilogue: Epilogue,
    sums: impl Fn(usize, usize, usize, usize, &mut [[f32; BLOCK * NV]; MR]) + Sync,
) -> Vec<f32> {
    run_tiles(rows, n, epilogue, sums, |_, _, acc, row| row.copy_from_slice(acc))
}

/// Calls `tile(r, m, b, v)` for every tile of `rows` rows and `ceil(n / 16)` blocks: rows
/// `r..r + m` (`m <= MR`) and blocks `b..b + v` (`v <= NV`). Tiles cover each (row, block)
/// once and run side by side: tasks of [`ROWS_PER_TASK`] rows by one column group.
fn for_each_tile(rows: usize, n: usize, tile: impl Fn(usize, usize, usize, usize) + Sync) {
    let blocks = n.div_ceil(BLOCK);
    let groups = blocks.div_ceil(NV);
    let row_tasks = rows.div_ceil(ROWS_PER_TASK);
    (0..row_tasks * groups).into_par_iter().for_each(|t| {
        let (rt, g) = (t / groups, t % groups);
        let (r0, b0) = (rt * ROWS_PER_TASK, g * NV);
        let r1 = (r0 + ROWS_PER_TASK).min(rows);
        let v = NV.min(blocks - b0);
        let mut r = r0;
        while r < r1 {
            let m = MR.min(r1 - r);
            tile(r, m, b0, v);
            r += m;
        }
    });
}
