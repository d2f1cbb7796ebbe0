//! Relative positions of DeBERTa's disentangled attention.
//!
//! For query position `q` and key position `k`, transformers computes
//! `c(q, k) = clamp(bucket(q - k) + span, 0, 2 * span - 1)`, the row of the relative
//! embedding table that both the content-to-position (c2p) and the position-to-content (p2c)
//! terms read. `bucket` is odd (`bucket(-x) = -bucket(x)`), so the p2c index of transformers,
//! `clamp(-bucket(k - q) + span)`, is the same `c(q, k)`: one table serves both terms.
//!
//! `c(q, k)` depends only on `q - k` and grows with it, so a sequence of length `L` only reads
//! the contiguous rows `c(0, L-1) ..= c(L-1, 0)`. The forward pass projects just those rows.

/// transformers' `make_log_bucket_position`, computed in f32 as torch does.
pub fn log_bucket(rel: i64, bucket_size: usize, max_position: usize) -> i64 {
    let mid = (bucket_size / 2) as i64;
    let abs_pos = if rel < mid && rel > -mid { mid - 1 } else { rel.abs() };
    if abs_pos <= mid {
        return rel;
    }
    let ratio = (abs_pos as f32) / (mid as f32);
    let denom = (((max_position as f64) - 1.0) / (mid as f64)) as f32;
    let log_pos = (ratio.ln() / denom.ln() * ((mid - 1) as f32)).ceil() + mid as f32;
    (log_pos as i64) * rel.signum()
}

/// The relative-position table row for a query/key distance `q - k`.
#[derive(Debug, Clone, Copy)]
pub struct RelPos {
    span: usize,
    buckets: usize,
    max_relative_positions: usize,
}

impl RelPos {
    pub fn new(span: usize, buckets: usize, max_relative_positions: usize) -> Self {
        Self { span, buckets, max_relative_positions }
    }

    /// Row of the relative embedding table for distance `delta = q - k`.
    pub fn row(&self, delta: i64) -> usize {
        let rel = if self.buckets > 0 && self.max_relative_positions > 0 {
            log_bucket(delta, self.buckets, self.max_relative_positions)
        } else {
            delta
        };
        (rel + self.span as i64).clamp(0, 2 * self.span as i64 - 1) as usize
    }

    /// For a sequence of `len` tokens: the first table row it reads, and for every distance
    /// `delta` in `-(len-1) ..= len-1` (at `delta + len - 1`), its row minus that first row.
    pub fn rows_for_len(&self, len: usize) -> (usize, Vec<u32>) {
        let n = len as i64;
        let first = self.row(-(n - 1));
        let rows = (-(n - 1)..n).map(|d| (self.row(d) - first) as u32).collect();
        (first, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_odd_and_monotone() {
        let rp = RelPos::new(256, 256, 512);
        for d in 0..5000i64 {
            assert_eq!(log_bucket(-d, 256, 512), -log_bucket(d, 256, 512));
            assert!(rp.row(d + 1) >= rp.row(d));
        }
        // Inside the linear zone the bucket is the distance itself.
        assert_eq!(log_bucket(127, 256, 512), 127);
        assert_eq!(log_bucket(128, 256, 512), 128);
        assert!(log_bucket(129, 256, 512) > 128);
        assert!(rp.row(100_000) == 511 && rp.row(-100_000) == 0);
    }

    #[test]
    fn rows_without_buckets_clamp() {
        let rp = RelPos::new(4, 0, 4);
        assert_eq!(rp.row(0), 4);
        assert_eq!(rp.row(10), 7);
        assert_eq!(rp.row(-10), 0);
        let (first, rows) = rp.rows_for_len(3);
        assert_eq!(first, 2);
        assert_eq!(rows, vec![0, 1, 2, 3, 4]);
    }
}
