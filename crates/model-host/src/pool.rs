//! The one builder of inference thread pools, for a backend and for the model process.

use rayon::ThreadPool;

use crate::failure::{Failure, SqlState};

/// Whom a pool serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolRole {
    /// A backend's calls, at `nice` (0 for ordinary work). Its threads block every signal, so
    /// that PostgreSQL's signals reach the backend's main thread.
    Backend { nice: i32 },
    /// The model process's calls of sessions.
    Service,
    /// The model process's calls of queue workers, at `nice`.
    ServiceBackground { nice: i32 },
}

/// A pool of `threads` inference threads for `role`. A backend's and the service's own pool
/// also size candle's matrix products to it; a backend's threads share the main malloc arena,
/// so that a backend holds less memory, and keeps less of it as it serves (README, "Memory
/// allocation"); this is set before the threads start, so that none of them gets an arena of
/// its own.
pub fn inference_pool(threads: usize, role: PoolRole) -> Result<ThreadPool, Failure> {
    if !matches!(role, PoolRole::ServiceBackground { .. }) {
        biomed_ner_engine::set_cpu_threads(Some(threads));
    }
    if let PoolRole::Backend { .. } = role {
        biomed_ner_engine::share_main_arena();
    }
    let builder = rayon::ThreadPoolBuilder::new().num_threads(threads);
    let built = match role {
        PoolRole::Backend { nice } => builder
            .thread_name(|i| format!("biomed_ner-{i}"))
            .start_handler(move |_| {
                block_signals();
                lower_thread_priority(nice);
            })
            .build(),
        PoolRole::Service => builder.thread_name(|i| format!("biomed_ner-{i}")).build(),
        PoolRole::ServiceBackground { nice } => builder
            .thread_name(|i| format!("biomed_ner-bg-{i}"))
            .start_handler(move |_| lower_thread_priority(nice))
            .build(),
    };
    built.map_err(|e| {
        let (kind, hint) = match role {
            PoolRole::Backend { .. } => ("", "Lower biomed_ner.threads."),
            PoolRole::Service => ("", "Lower biomed_ner.threads in the server's configuration."),
            PoolRole::ServiceBackground { .. } => ("background ", "Lower biomed_ner.threads in the server's configuration."),
        };
        Failure::new(SqlState::INSUFFICIENT_RESOURCES, format!("could not start {threads} {kind}inference threads: {e}"), hint)
    })
}

/// Lowers the calling thread's scheduling priority to `nice` (on Linux a thread's nice value is
/// its own; threads it starts inherit it). Raising it back would need a privilege, so this is
/// only ever called on threads that do background work for their whole life.
pub fn lower_thread_priority(nice: i32) {
    if nice > 0 {
        // Safety: plain libc call on the calling thread (who = 0).
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    }
}

fn block_signals() {
    // Safety: plain libc calls on a fresh, owned signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
