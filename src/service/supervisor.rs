//! The supervisor: a background worker that owns the service's socket and runs the model
//! processes as its own children.
//!
//! The postmaster restarts every session when a process attached to shared memory dies by a
//! signal. The model (candle, CUDA, a large native allocation) is what might, so it never runs
//! in a PostgreSQL process: the supervisor forks it, the child detaches from shared memory at
//! once and never calls PostgreSQL again ([`biomed_ner_host::server`]). When a child dies the supervisor
//! sees it (the postmaster does not: it is not the postmaster's child), logs why, and forks
//! another within a second; the socket stays open meanwhile, so callers that connect wait
//! instead of failing. The supervisor itself only waits on its latch, reaps and forks.
//!
//! Configuration: at SIGHUP the supervisor re-reads the server's configuration and sends the
//! service's part ([`ServiceConfig`]) to each child, which reloads its model if the model,
//! device, dtype or threads changed, without a restart.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use biomed_ner_host::protocol::{ServiceConfig, WorkerMeta};
use biomed_ner_host::server;
use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::prelude::*;

use super::{service_config, SOCKET};
use crate::gucs;

/// A child that lived less than this long before dying counts as a failed start: the next
/// one waits longer, up to [`MAX_BACKOFF`].
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

struct Worker {
    pid: libc::pid_t,
    /// The write end of the child's control pipe: configurations go down it, and closing it
    /// tells the child to exit.
    control: File,
    started: Instant,
}

struct Slot {
    worker: Option<Worker>,
    /// When to start this slot's next child.
    start_at: Instant,
    /// Short-lived children in a row.
    failures: u32,
}

struct Supervisor {
    listener: UnixListener,
    slots: Vec<Slot>,
    config: ServiceConfig,
    restarts: u64,
    last_exit: Option<String>,
}

fn log(message: String) {
    pgrx::log!("biomed_ner service: {message}");
}

/// The background worker's entry point.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn biomed_ner_service_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // Children are reaped here, with their exit status.
    // Safety: plain libc call.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    let listener = match bind() {
        Ok(l) => l,
        Err(e) => {
            // Exit code 1: the postmaster starts this worker again after its restart time.
            pgrx::warning!("biomed_ner service: cannot listen on {SOCKET}: {e}");
            // Safety: ends this background worker the way PostgreSQL does. (PostgreSQL 18's
            // headers no longer tell bindgen that proc_exit does not return.)
            #[allow(unreachable_code)]
            {
                unsafe { pg_sys::proc_exit(1) };
                unreachable!("proc_exit returned")
            }
        }
    };
    let workers = gucs::workers();
    let now = Instant::now();
    let mut sup = Supervisor {
        listener,
        slots: (0..workers).map(|_| Slot { worker: None, start_at: now, failures: 0 }).collect(),
        config: service_config(),
        restarts: 0,
        last_exit: None,
    };
    log(format!("listening on {SOCKET} with {workers} model process(es), model \"{}\"", sup.config.spec.model));
    loop {
        sup.reap();
        sup.start_due();
        if !BackgroundWorker::wait_latch(Some(Duration::from_millis(100))) {
            break;
        }
        if gucs::reload_on_sighup() {
            sup.resize(gucs::workers());
            let config = service_config();
            if config != sup.config {
                log(format!("configuration changed (model \"{}\"); telling the model processes", config.spec.model));
                sup.config = config;
                sup.send_config();
            }
        }
    }
    sup.stop();
}

fn bind() -> std::io::Result<UnixListener> {
    if let Some(dir) = std::path::Path::new(SOCKET).parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket left by an earlier server: nobody listens on it any more.
    let _ = std::fs::remove_file(SOCKET);
    UnixListener::bind(SOCKET)
}

/// What `status` (from `waitpid`) says of how a child ended.
fn describe_exit(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        // Safety: strsignal returns a static or thread-local string for any number.
        let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(signal)) }.to_string_lossy().into_owned();
        format!("terminated by signal {signal}: {name}")
    } else {
        format!("exited with exit code {}", libc::WEXITSTATUS(status))
    }
}

impl Supervisor {
    fn reap(&mut self) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(worker) = &slot.worker else { continue };
            let mut status = 0;
            // Safety: waits, without blocking, for our own child.
            let pid = unsafe { libc::waitpid(worker.pid, &mut status, libc::WNOHANG) };
            if pid == 0 {
                continue;
            }
            let how = if pid < 0 { "is gone".to_string() } else { describe_exit(status) };
            let lived = worker.started.elapsed();
            slot.failures = if lived < HEALTHY_AFTER { slot.failures + 1 } else { 1 };
            // The first failure restarts at once; failures in a row wait 1, 2, 4, 8 s.
            let backoff = match slot.failures {
                0 | 1 => Duration::ZERO,
                n => Duration::from_secs(1 << (n - 2).min(3)).min(MAX_BACKOFF),
            };
            let message = format!("model process {i} (pid {}) {how}", worker.pid);
            log(format!("{message}; starting another in {} s", backoff.as_secs()));
            self.last_exit = Some(message);
            self.restarts += 1;
            slot.worker = None;
            slot.start_at = Instant::now() + backoff;
        }
    }

    fn start_due(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].worker.is_none() && self.slots[i].start_at <= now {
                match self.fork(i) {
                    Ok(w) => self.slots[i].worker = Some(w),
                    Err(e) => {
                        log(format!("cannot start model process {i}: {e}"));
                        self.slots[i].start_at = now + MAX_BACKOFF;
                    }
                }
            }
        }
    }

    fn fork(&self, index: usize) -> std::io::Result<Worker> {
        let mut fds = [0; 2];
        // Safety: plain libc call with a two-element array.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Safety: both ends are fresh descriptors we own.
        let (read_end, write_end) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        let meta = WorkerMeta {
            worker: index,
            // Safety: plain libc call.
            supervisor_pid: unsafe { libc::getpid() },
            restarts: self.restarts,
            last_exit: self.last_exit.clone(),
        };
        // Safety: this process is single-threaded (a PostgreSQL background worker), so the
        // child may run any code; it never returns into PostgreSQL.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if pid == 0 {
            drop(write_end);
            // The other children's pipes: only the supervisor may hold them, or they never
            // see the end of their pipe.
            for slot in &self.slots {
                if let Some(w) = &slot.worker {
                    // Safety: closing an inherited descriptor this process does not use.
                    unsafe { libc::close(w.control.as_raw_fd()) };
                }
            }
            become_model_process();
            let listener = self.listener.try_clone().unwrap_or_else(|_| server::exit(71));
            let config = self.config.clone();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                server::run(listener, read_end, config, meta)
            }));
            let _ = result;
            server::exit(70);
        }
        drop(read_end);
        let mut worker = Worker { pid, control: write_end, started: Instant::now() };
        send(&mut worker, &self.config);
        Ok(worker)
    }

    /// Starts or ends model processes so that there are `workers`; an ended one's pipe is
    /// closed, which ends it.
    fn resize(&mut self, workers: usize) {
        if workers == self.slots.len() {
            return;
        }
        log(format!("biomed_ner.workers changed from {} to {workers}", self.slots.len()));
        while self.slots.len() > workers {
            if let Some(w) = self.slots.pop().and_then(|s| s.worker) {
                let pid = w.pid;
                drop(w);
                let mut status = 0;
                // Safety: ends and reaps our own child (SIGTERM's default action ends it).
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                    libc::waitpid(pid, &mut status, 0);
                }
            }
        }
        let now = Instant::now();
        self.slots.resize_with(workers, || Slot { worker: None, start_at: now, failures: 0 });
    }

    fn send_config(&mut self) {
        let config = self.config.clone();
        for slot in &mut self.slots {
            if let Some(w) = &mut slot.worker {
                send(w, &config);
            }
        }
    }

    /// Stops the children: closing their pipes ends them; SIGKILL any still there after 5 s.
    fn stop(&mut self) {
        let workers: Vec<Worker> = self.slots.iter_mut().filter_map(|s| s.worker.take()).collect();
        let pids: Vec<libc::pid_t> = workers.iter().map(|w| w.pid).collect();
        drop(workers);
        let deadline = Instant::now() + Duration::from_secs(5);
        for pid in pids {
            loop {
                let mut status = 0;
                // Safety: waits, without blocking, for our own child.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r != 0 {
                    break;
                }
                if Instant::now() >= deadline {
                    // Safety: signals and reaps our own child.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, &mut status, 0);
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_file(SOCKET);
    }
}

/// Sends `config` to a child as one JSON line (a few hundred bytes: the pipe takes it whole).
fn send(worker: &mut Worker, config: &ServiceConfig) {
    let mut line = serde_json::to_vec(config).expect("a configuration serializes");
    line.push(b'\n');
    if let Err(e) = worker.control.write_all(&line) {
        log(format!("cannot send the configuration to pid {}: {e}", worker.pid));
    }
}

/// Turns a freshly forked child of the supervisor into a model process: detached from
/// PostgreSQL's shared memory (as the syslogger is), with the default signal dispositions
/// instead of PostgreSQL's handlers, and killed when the supervisor dies.
fn become_model_process() {
    // Safety: signal masks, dispositions and prctl on this single-threaded child; the detach
    // calls are those PostgreSQL itself makes in the children it does not want attached.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        pg_sys::dsm_detach_all();
        PGSharedMemoryDetach();
        for signal in 1..libc::SIGRTMIN() {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
        // Writes to a backend that hung up fail with EPIPE instead of killing the process.
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let parent = libc::getppid();
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // The supervisor may have died before the line above.
        if libc::getppid() != parent {
            server::exit(0);
        }
        libc::sigprocmask(libc::SIG_UNBLOCK, &all, std::ptr::null_mut());
    }
}

unsafe extern "C" {
    /// Unmaps the main shared memory segment (sysv_shmem.c); not in pgrx's bindings.
    fn PGSharedMemoryDetach();
}
