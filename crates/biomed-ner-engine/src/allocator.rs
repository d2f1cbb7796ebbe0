//! How glibc's malloc treats the engine's short-lived buffers.
//!
//! candle gives every operation's output a new buffer and frees it a few operations later. A
//! batch of 512-token windows makes buffers of several to hundreds of MB (a 3072-wide
//! intermediate layer is 6 MB a window; attention scores, 12 MB a window). glibc serves a
//! request above its mmap threshold (128 kB at first, then rising to the largest buffer freed,
//! up to 32 MB) with a mapping of its own and unmaps it on free, and gives the free top of a heap
//! back to the kernel past its trim threshold, so that each such buffer is zero-filled afresh by
//! the kernel, a page fault a page: most of a pass's system time, and a slower pass, than when
//! the buffers are reused (bench/results/README.md, "Memory allocation: why buffers are
//! reused").
//!
//! [`tune_allocator`] makes glibc serve them from its heaps, which keep them for the next
//! operation. [`share_main_arena`] puts the threads a process starts afterwards on its main
//! arena, for hosts of many small processes (PostgreSQL backends): one arena's free memory
//! serves every thread, instead of each thread's arena keeping its own.

/// Free memory at the top of a heap kept for the next pass rather than given back at once.
pub const TRIM_THRESHOLD: usize = 128 << 20;

/// Whether the environment sets any of `variables` (those glibc reads for malloc).
fn set_in_environment(variables: &[&str]) -> bool {
    variables.iter().any(|v| std::env::var_os(v).is_some())
}

/// Whether the environment sets how malloc keeps freed memory, through the variables glibc
/// reads for it.
fn chosen_by_environment() -> bool {
    set_in_environment(&["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_", "GLIBC_TUNABLES"])
}

/// Makes glibc serve every request from its heaps (no mapping of its own per buffer,
/// `M_MMAP_MAX` 0) and keep up to [`TRIM_THRESHOLD`] free at the top of a heap (`M_TRIM_THRESHOLD`),
/// for the whole process, once; returns whether it did. It leaves malloc alone where the
/// environment already chose (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`,
/// `MALLOC_TOP_PAD_`, `MALLOC_MMAP_MAX_` or `GLIBC_TUNABLES` set), and does nothing on other C
/// libraries. A thread's heap holds 64 MB at most, so on threads other than the main one larger
/// buffers are still mapped and unmapped each time.
///
/// The cost is memory held after a pass: freed buffers stay with the process for reuse (up to
/// [`TRIM_THRESHOLD`] at the top of a heap, and whatever lies below a buffer still in use)
/// instead of going back to the kernel at once; the peak is the same. Hosts that run other work
/// in the same process call this when they load a model.
pub fn tune_allocator() -> bool {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DONE.get_or_init(|| !chosen_by_environment() && set_options())
}

/// Makes every thread the process starts from now on allocate from glibc's main arena
/// (`M_ARENA_MAX` 1), once; returns whether it did. Without it, each new thread that allocates
/// gets an arena of its own (up to eight per core), whose free memory stays with that arena,
/// fragmented, and is handed back to the kernel only from the top of its heaps. For a host of
/// many small processes, each with a few inference threads that take turns with the main
/// thread (a PostgreSQL backend), one arena keeps less memory per process. It must run before
/// those threads first allocate: a thread keeps the arena it was given. It leaves malloc alone
/// where the environment chose (`MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` set), and does nothing on
/// other C libraries.
pub fn share_main_arena() -> bool {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DONE.get_or_init(|| !set_in_environment(&["MALLOC_ARENA_MAX", "GLIBC_TUNABLES"]) && set_arena_max(1))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(arenas: libc::c_int) -> bool {
    // SAFETY: mallopt may be called from any thread at any time; 1 is within glibc's bounds.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_: i32) -> bool {
    false
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_options() -> bool {
    // SAFETY: mallopt takes the arenas' locks itself and may be called from any thread at any
    // time; both values are within glibc's bounds (it refuses, returning 0, otherwise).
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_options() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Minor page faults of the calling thread so far.
    fn faults() -> i64 {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage fills the struct it is given.
        assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) }, 0);
        unsafe { usage.assume_init() }.ru_minflt
    }

    fn touched(bytes: usize) -> Vec<u8> {
        let mut v = Vec::<u8>::with_capacity(bytes);
        // Writes every page, as a kernel's output does.
        v.resize(bytes, 1);
        std::hint::black_box(v)
    }

    /// Two buffers of a long window's size, freed and asked for again, as candle does from one
    /// operation to the next: with the thresholds set, the second round reuses the heap's pages
    /// (with glibc's defaults the buffers are mapped afresh, or the heap grown afresh after
    /// unmapping, a page fault a page: 5120 for 20 MB).
    #[test]
    fn freed_buffers_are_reused_without_page_faults() {
        if chosen_by_environment() {
            return; // the environment's choice stands; nothing of ours to check
        }
        assert!(tune_allocator());
        // A thread of its own: its own arena, and faults counted for it alone.
        std::thread::spawn(|| {
            const SIZE: usize = 20 << 20;
            drop((touched(SIZE), touched(SIZE)));
            let before = faults();
            drop((touched(SIZE), touched(SIZE)));
            let again = faults() - before;
            assert!(again < 256, "{again} page faults asking again for two freed 20 MB buffers");
        })
        .join()
        .unwrap();
    }
}
