//! `share_main_arena`: a thread started after it allocates from glibc's main arena, the heap
//! the program break bounds; a thread started without it, from an arena of its own, mapped
//! elsewhere (checked in a child process, so that the check itself is shown to tell the two
//! apart). Runs without the test harness, whose threads would have arenas of their own first.

/// Where a small block that a new thread allocates lies: in the main arena's heap (below the
/// program break) or not.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn new_thread_allocates_below_break() -> bool {
    std::thread::spawn(|| {
        let block = vec![1u8; 256];
        let at = block.as_ptr() as usize;
        // SAFETY: sbrk(0) only reads the current program break.
        let brk = unsafe { libc::sbrk(0) } as usize;
        at < brk
    })
    .join()
    .unwrap()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() || std::env::var_os("GLIBC_TUNABLES").is_some() {
        println!("arena: skipped, the environment sets malloc's arenas");
        return;
    }
    if std::env::var_os("ARENA_TEST_CONTROL").is_some() {
        // The control, in a child: glibc's default gives the new thread an arena of its own.
        std::process::exit(if new_thread_allocates_below_break() { 1 } else { 0 });
    }
    let control = std::process::Command::new(std::env::current_exe().unwrap())
        .env("ARENA_TEST_CONTROL", "1")
        .status()
        .unwrap();
    assert!(control.success(), "without share_main_arena a new thread should have an arena of its own");
    assert!(biomed_ner_engine::share_main_arena());
    assert!(new_thread_allocates_below_break(), "a thread started after share_main_arena allocated outside the main arena");
    assert!(biomed_ner_engine::share_main_arena(), "a second call answers as the first");
    println!("arena: ok");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {}
