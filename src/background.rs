//! Whether this process's inference is background work: a queue worker marks itself so, and
//! its calls then run at `biomed_ner.queue_nice`, in this backend's threads or in the service's
//! background threads.

use std::sync::atomic::{AtomicI32, Ordering};

/// The nice value of this process's inference, or -1 for ordinary work.
static BACKGROUND_NICE: AtomicI32 = AtomicI32::new(-1);

/// Marks this process's inference as background work at `nice` (a queue worker, at its start
/// and after each reload).
pub fn set_background(nice: i32) {
    BACKGROUND_NICE.store(nice.clamp(0, 19), Ordering::Relaxed);
}

/// Whether this process's inference is background work.
pub fn is_background() -> bool {
    BACKGROUND_NICE.load(Ordering::Relaxed) >= 0
}

/// The nice value of this process's inference threads (0 for ordinary work).
pub fn nice() -> i32 {
    BACKGROUND_NICE.load(Ordering::Relaxed).max(0)
}
