//! Long texts as overlapping windows, and windows packed into batches.
//!
//! A text of `n` content tokens (special tokens excluded) is cut into windows of at most
//! `content` tokens that overlap by `stride`. Every token takes its logits from the window in
//! which it has the most context on its nearer side (a text's own start and end count as
//! unlimited context), so no token is scored twice and no entity is cut at a window border:
//! aggregation runs once over the whole text.

use crate::error::{Error, Result};

/// A window `[start, end)` over a text's content tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: usize,
    pub end: usize,
}

/// The windows covering `n` tokens, at most `content` long, overlapping by `stride`.
pub fn windows(n: usize, content: usize, stride: usize) -> Result<Vec<Window>> {
    if content == 0 || stride >= content {
        return Err(Error::InvalidOption(format!(
            "stride {stride} must be smaller than the window's {content} content tokens"
        )));
    }
    if n <= content {
        return Ok(vec![Window { start: 0, end: n }]);
    }
    let step = content - stride;
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        if start + content >= n {
            out.push(Window { start: n - content, end: n });
            break;
        }
        out.push(Window { start, end: start + content });
        start += step;
    }
    Ok(out)
}

/// For each token, the index of the window it takes its logits from.
pub fn owners(n: usize, windows: &[Window]) -> Vec<usize> {
    (0..n)
        .map(|t| {
            let context = |w: &Window| {
                let left = if w.start == 0 { usize::MAX } else { t - w.start };
                let right = if w.end == n { usize::MAX } else { w.end - 1 - t };
                left.min(right)
            };
            let mut best = None::<(usize, usize)>;
            for (i, w) in windows.iter().enumerate() {
                if w.start <= t && t < w.end {
                    let c = context(w);
                    if best.is_none_or(|(_, bc)| c > bc) {
                        best = Some((i, c));
                    }
                }
            }
            best.expect("windows cover every token").0
        })
        .collect()
}

/// Packs sequences (given by their lengths) into batches of at most `batch_size` sequences
/// whose padded size (`longest * count`) stays within `max_batch_tokens`; a sequence longer
/// than `max_batch_tokens` forms a batch of its own. Sequences are sorted by length first so
/// that each batch pads little. Returns indices into `lens`.
pub fn pack(lens: &[usize], batch_size: usize, max_batch_tokens: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        // Sorted longest first: the batch's padded length is its first member's.
        let longest = current.first().map_or(lens[i], |&f| lens[f]);
        if !current.is_empty() && (current.len() >= batch_size || longest * (current.len() + 1) > max_batch_tokens) {
            batches.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_and_overlap() {
        assert_eq!(windows(5, 10, 2).unwrap(), vec![Window { start: 0, end: 5 }]);
        let w = windows(25, 10, 4).unwrap();
        assert_eq!(w.first().unwrap().start, 0);
        assert_eq!(w.last().unwrap().end, 25);
        for pair in w.windows(2) {
            assert!(pair[1].start < pair[0].end, "consecutive windows overlap");
            assert!(pair[0].end - pair[1].start >= 4);
        }
        assert!(windows(25, 10, 10).is_err());
    }

    #[test]
    fn every_token_has_one_owner_far_from_inner_edges() {
        let n = 100;
        let w = windows(n, 20, 8).unwrap();
        let own = owners(n, &w);
        for (t, &o) in own.iter().enumerate() {
            let win = w[o];
            assert!(win.start <= t && t < win.end);
            if win.start > 0 {
                assert!(t - win.start >= 3, "token {t} too near the left edge of {win:?}");
            }
            if win.end < n {
                assert!(win.end - 1 - t >= 3, "token {t} too near the right edge of {win:?}");
            }
        }
    }

    #[test]
    fn packing_respects_both_limits() {
        let lens = [5, 50, 7, 7, 300, 6, 49];
        let b = pack(&lens, 3, 120);
        let mut seen: Vec<usize> = b.concat();
        seen.sort();
        assert_eq!(seen, (0..lens.len()).collect::<Vec<_>>());
        for batch in &b {
            assert!(batch.len() <= 3);
            let longest = batch.iter().map(|&i| lens[i]).max().unwrap();
            assert!(batch.len() == 1 || longest * batch.len() <= 120, "{batch:?}");
        }
    }
}
