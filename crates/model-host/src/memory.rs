//! What a backend gives back to the system after a call.
//!
//! glibc's arenas keep a backend's freed tensor memory resident and fragmented, so a backend
//! that serves for long grows without leaking (bench/results/README.md, "Reliability: soak runs").
//! `malloc_trim` hands the free memory back; it walks every arena, so it runs at most once a
//! second, and at once after a large call (a backend that once read a very long note would
//! otherwise hold hundreds of megabytes until it exits). The model process does not trim: it is
//! one process, whose calls ran slower with it (the released pages fault back in on the next
//! batch).

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of text annotated in one call above which the memory is given back at once.
pub const TRIM_AFTER_BYTES: usize = 200_000;

/// After a call that annotated `text_bytes` bytes of text (0 for a model load).
pub fn after_call(text_bytes: usize) {
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let last = LAST_MS.load(Ordering::Relaxed);
    let due = now.saturating_sub(last) >= 1000 && LAST_MS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok();
    if due || text_bytes > TRIM_AFTER_BYTES {
        // Safety: plain libc call; it only releases memory the allocator holds free.
        unsafe { libc::malloc_trim(0) };
    }
}
