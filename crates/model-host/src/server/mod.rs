//! The model process: one model for every session of the server.
//!
//! Forked by the supervisor, detached from PostgreSQL's shared memory, and never calling
//! PostgreSQL: it is plain Rust (this crate does not depend on pgrx), so a crash here (a signal, an abort, a GPU fault) is a child
//! of the supervisor dying, which the postmaster never sees. Threads:
//! - the main thread accepts connections on the socket the supervisor holds;
//! - one thread per backend connection reads its requests, queues them and writes the answers,
//!   and notices when the backend hangs up (a cancelled call) so its work is dropped;
//! - one inference thread takes the queue in batches: requests with the same options, from
//!   every session, become one call of the engine, which cuts them into windows, sorts them
//!   by length and runs them `batch_size` at a time;
//! - a background inference thread does the same for the queue workers' requests, on threads
//!   of its own at `biomed_ner.queue_nice`, with the same model: a backfill takes only the CPU
//!   that sessions leave;
//! - a control thread reads new configurations from the supervisor, and exits the process
//!   when the supervisor is gone.


use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use biomed_ner_engine::Pipeline;

use crate::failure::{panic_message, Failure, SqlState};
use crate::protocol::{read_frame, write_frame, Request, Response, ServiceConfig, WorkerMeta};
use crate::spec::CallOptions;

/// Characters one batch takes from the queue (its first request whatever its size), so that a
/// bulk call's large request does not hold back many small ones for long.
const BATCH_CHARS: usize = 256 * 1024;

/// A service whose last batch ended longer ago than this is idle: nobody is about to send a
/// request that could join the next batch, so it does not wait for one.
const IDLE_AFTER: Duration = Duration::from_millis(100);

/// How often a connection's thread looks whether its backend hung up while its request waits.
const HANGUP_POLL: Duration = Duration::from_millis(20);

/// Writes a line to the server's log (this process's stderr is the postmaster's).
macro_rules! log {
    ($($arg:tt)*) => {
        eprintln!("biomed_ner service (pid {}): {}", std::process::id(), format!($($arg)*))
    };
}

mod infer;
mod status;

struct Job {
    /// Requests of equal options share a batch.
    key: CallOptions,
    /// A queue worker's request, for the background inference thread.
    background: bool,
    texts: Vec<String>,
    /// Set by the connection's thread when its backend hung up.
    abandoned: Arc<AtomicBool>,
    reply: mpsc::Sender<Response>,
}

struct Loaded {
    pipeline: Pipeline,
    device_name: &'static str,
    pool: rayon::ThreadPool,
}

enum ModelState {
    Loading,
    Ready(Arc<Loaded>),
    Failed(Failure),
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    notes: AtomicU64,
    batches: AtomicU64,
    batched_notes: AtomicU64,
    abandoned: AtomicU64,
    failures: AtomicU64,
    connections: AtomicU64,
    background_notes: AtomicU64,
}

struct Service {
    queue: Mutex<VecDeque<Job>>,
    wake: Condvar,
    /// The configuration and how many times it was set: the inference thread reloads the
    /// model when the model's part of it changes.
    config: Mutex<(ServiceConfig, u64)>,
    state: RwLock<ModelState>,
    /// The configuration `state` was reached with (set by the inference thread after each load):
    /// while it differs from the current one in what a reload depends on, the inference thread
    /// loads again and the status says `loading` (not the old model's state).
    state_for: Mutex<Option<ServiceConfig>>,
    stats: Stats,
    last_error: Mutex<Option<String>>,
    /// What a role that may not read server files sees of `last_error` (a model's load error
    /// quotes paths and file content; the backend chooses).
    last_error_redacted: Mutex<Option<String>>,
    meta: WorkerMeta,
    /// When the last batch ended: a service idle for longer than [`IDLE_AFTER`] runs a request
    /// at once instead of waiting to fill a batch.
    last_batch: Mutex<Instant>,
    started: Instant,
    started_at: f64,
}

/// Runs the model process; never returns.
pub fn run(listener: UnixListener, control: File, config: ServiceConfig, meta: WorkerMeta) -> ! {
    let service = Arc::new(Service {
        queue: Mutex::new(VecDeque::new()),
        wake: Condvar::new(),
        config: Mutex::new((config, 0)),
        state: RwLock::new(ModelState::Loading),
        state_for: Mutex::new(None),
        stats: Stats::default(),
        last_error: Mutex::new(meta.last_exit.clone()),
        last_error_redacted: Mutex::new(None),
        meta,
        last_batch: Mutex::new(Instant::now() - IDLE_AFTER),
        started: Instant::now(),
        started_at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
    });
    // These threads are the service: if one of them ends by a panic, the process ends, and the
    // supervisor starts another, instead of leaving callers waiting on a service that no longer
    // serves.
    let spawn = |name: &'static str, f: Box<dyn FnOnce() + Send>| {
        let body = move || {
            if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
                log!("its {name} thread failed: {}", panic_message(&*panic));
                exit(70);
            }
        };
        std::thread::Builder::new().name(name.into()).spawn(body).unwrap_or_else(|e| {
            log!("cannot start its {name} thread: {e}");
            exit(70)
        })
    };
    let s = service.clone();
    spawn("biomed_ner-infer", Box::new(move || s.infer_loop()));
    let s = service.clone();
    spawn("biomed_ner-background", Box::new(move || s.background_loop()));
    let s = service.clone();
    spawn("biomed_ner-control", Box::new(move || s.control_loop(control)));
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let s = service.clone();
                let spawned =
                    std::thread::Builder::new().name("biomed_ner-conn".into()).spawn(move || s.serve_connection(stream));
                if let Err(e) = spawned {
                    // The backend sees its connection closed and reports the service unavailable.
                    log!("cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                log!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    exit(0)
}

/// Ends the process at once: no exit handlers, which belong to the PostgreSQL process this
/// one was forked from.
pub fn exit(code: i32) -> ! {
    // Safety: _exit ends the process; nothing runs after it.
    unsafe { libc::_exit(code) }
}

/// Whether the peer of `stream` hung up (checked without waiting).
fn hung_up(stream: &UnixStream) -> bool {
    let mut pfd = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
    // Safety: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

impl Service {
    fn config(&self) -> ServiceConfig {
        self.config.lock().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// Reads configurations, one JSON line each, until the supervisor closes the pipe (it
    /// stopped this worker, or died): then the process ends.
    fn control_loop(&self, control: File) {
        for line in BufReader::new(control).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<ServiceConfig>(&line) {
                Ok(new) => {
                    let mut guard = self.config.lock().unwrap_or_else(|e| e.into_inner());
                    *guard = (new, guard.1 + 1);
                    drop(guard);
                    self.wake.notify_all();
                }
                Err(e) => log!("ignoring a configuration it cannot read: {e}"),
            }
        }
        exit(0)
    }

    fn serve_connection(&self, mut stream: UnixStream) {
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        loop {
            let response = match read_frame::<Request>(&mut stream) {
                Ok(Some(Request::Status)) => Response::Status { status: self.status() },
                Ok(Some(Request::Annotate { model, options, texts, background })) => {
                    let other = {
                        let config = self.config.lock().unwrap_or_else(|e| e.into_inner());
                        (!model.same_model(&config.0.spec)).then(|| config.0.spec.clone())
                    };
                    if let Some(service) = other {
                        Response::OtherModel { service }
                    } else {
                        match self.submit(&stream, options, texts, background) {
                            Some(r) => r,
                            None => break,
                        }
                    }
                }
                // A whole frame that does not parse (a name this build does not know): refused,
                // and the connection goes on.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Response::Failed {
                    failure: Failure::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("the inference service cannot read this request: {e}"),
                        "The backend and the service run the same build of biomed_ner; restart the server after an upgrade.",
                    ),
                },
                Ok(None) | Err(_) => break,
            };
            if write_frame(&mut stream, &response).is_err() {
                break;
            }
        }
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Queues a request and waits for its answer; `None` when the backend hung up first.
    fn submit(&self, stream: &UnixStream, key: CallOptions, texts: Vec<String>, background: bool) -> Option<Response> {
        let (reply, answer) = mpsc::channel();
        let abandoned = Arc::new(AtomicBool::new(false));
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push_back(Job {
            key,
            background,
            texts,
            abandoned: abandoned.clone(),
            reply,
        });
        self.wake.notify_all();
        loop {
            match answer.recv_timeout(HANGUP_POLL) {
                Ok(response) => return Some(response),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if hung_up(stream) {
                        abandoned.store(true, Ordering::Relaxed);
                        self.stats.abandoned.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Some(Response::Failed { failure: Failure::internal("the inference thread dropped a request") })
                }
            }
        }
    }

}
