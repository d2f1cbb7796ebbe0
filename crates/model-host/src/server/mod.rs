//! The model process: one model for every session of the server.
//!
//! Forked by the supervisor, detached from PostgreSQL's shared memory, and never calling
//! PostgreSQL: it is plain Rust, so a crash here (a signal, an abort, a GPU fault) is a child
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

use deberta_ner::{Options, Pipeline};
use pgrx::PgSqlErrorCode;

use super::protocol::{read_frame, write_frame, ModelKey, Request, Response, ServiceConfig, WireEntity, WorkerMeta};
use crate::backend;
use crate::error::Failure;
use crate::gucs::{DeviceSetting, DtypeSetting};

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

/// Options that must be equal for requests to share a batch.
#[derive(Clone, PartialEq, Eq)]
struct BatchKey {
    aggregation: String,
    max_length: usize,
    stride: usize,
}

struct Job {
    key: BatchKey,
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
    /// quotes paths and file content; the backend chooses, [`super::status`]).
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

/// Whether a model loaded with `old` must be loaded again for `new`.
fn needs_reload(old: &ServiceConfig, new: &ServiceConfig) -> bool {
    old.key != new.key || old.model_path != new.model_path || old.threads != new.threads
}

/// Whether the peer of `stream` hung up (checked without waiting).
fn hung_up(stream: &UnixStream) -> bool {
    let mut pfd = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
    // Safety: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

fn internal(message: impl Into<String>) -> Failure {
    Failure::new(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        message,
        "This is a bug in biomed_ner; please report it with the input that caused it.",
    )
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
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
        while let Ok(Some(request)) = read_frame::<Request>(&mut stream) {
            let response = match request {
                Request::Status => Response::Status { status: self.status() },
                Request::Annotate { model, aggregation, max_length, stride, texts, background } => {
                    let other = {
                        let config = self.config.lock().unwrap_or_else(|e| e.into_inner());
                        (model != config.0.key).then(|| config.0.key.clone())
                    };
                    if let Some(service) = other {
                        Response::OtherModel { service }
                    } else {
                        match self.submit(&stream, BatchKey { aggregation, max_length, stride }, texts, background) {
                            Some(r) => r,
                            None => break,
                        }
                    }
                }
            };
            if write_frame(&mut stream, &response).is_err() {
                break;
            }
        }
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Queues a request and waits for its answer; `None` when the backend hung up first.
    fn submit(&self, stream: &UnixStream, key: BatchKey, texts: Vec<String>, background: bool) -> Option<Response> {
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
                    return Some(Response::Failed { failure: internal("the inference thread dropped a request") })
                }
            }
        }
    }

    /// Keeps `failure` as the last error, with the words a role that may not read server files
    /// sees instead.
    fn set_last_error(&self, failure: &Failure) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(failure.message.clone());
        *self.last_error_redacted.lock().unwrap_or_else(|e| e.into_inner()) = failure.redacted.as_ref().map(|(m, _)| m.clone());
    }

    fn status(&self) -> serde_json::Value {
        let config = self.config();
        let mut status = serde_json::Map::new();
        let stale = self.state_for.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_none_or(|old| needs_reload(old, &config));
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let (name, loaded, failure) = match &*state {
            _ if stale => ("loading", None, None),
            ModelState::Loading => ("loading", None, None),
            ModelState::Ready(l) => ("ready", Some(l.clone()), None),
            ModelState::Failed(f) => ("failed", None, Some(f.clone())),
        };
        drop(state);
        status.insert("state".into(), name.into());
        if let Some(f) = failure {
            status.insert("failure".into(), serde_json::to_value(f).unwrap_or_default());
        }
        status.insert("execution".into(), "service".into());
        if let Some(l) = &loaded {
            status.extend(backend::model_facts(&l.pipeline));
            status.insert("device".into(), l.device_name.into());
        } else {
            status.insert("model".into(), config.key.model.clone().into());
            status.insert("device".into(), config.key.device.clone().into());
        }
        let s = &self.stats;
        let batches = s.batches.load(Ordering::Relaxed);
        let batched = s.batched_notes.load(Ordering::Relaxed);
        let queued = self.queue.lock().unwrap_or_else(|e| e.into_inner()).len();
        let json = serde_json::json!({
            "model_setting": config.key.model,
            "device_setting": config.key.device,
            "dtype_setting": config.key.dtype,
            "pid": std::process::id(),
            "supervisor_pid": self.meta.supervisor_pid,
            "worker": self.meta.worker,
            "workers": config.workers,
            "threads": config.threads,
            "batch_size": config.batch_size,
            "batch_wait_ms": config.batch_wait_ms,
            "queue_nice": config.queue_nice,
            "started_at": self.started_at,
            "uptime_seconds": (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            "connections": s.connections.load(Ordering::Relaxed),
            "queue_depth": queued,
            "requests": s.requests.load(Ordering::Relaxed),
            "notes_annotated": s.notes.load(Ordering::Relaxed),
            "background_notes": s.background_notes.load(Ordering::Relaxed),
            "batches": batches,
            "mean_batch_notes": if batches == 0 { 0.0 } else { (batched as f64 / batches as f64 * 100.0).round() / 100.0 },
            "abandoned": s.abandoned.load(Ordering::Relaxed),
            "failures": s.failures.load(Ordering::Relaxed),
            "restarts": self.meta.restarts,
            "last_error": *self.last_error.lock().unwrap_or_else(|e| e.into_inner()),
            "last_error_redacted": *self.last_error_redacted.lock().unwrap_or_else(|e| e.into_inner()),
        });
        if let serde_json::Value::Object(m) = json {
            status.extend(m);
        }
        serde_json::Value::Object(status)
    }

    fn infer_loop(&self) {
        loop {
            let (config, generation) = self.config.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let reload =
                self.state_for.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_none_or(|old| needs_reload(old, &config));
            if reload {
                *self.state.write().unwrap_or_else(|e| e.into_inner()) = ModelState::Loading;
                let state = match load(&config) {
                    Ok(l) => {
                        log!("model \"{}\" loaded on {} in {:.2} s", l.pipeline.origin, l.device_name, l.pipeline.load_seconds);
                        warm_up(&l);
                        ModelState::Ready(Arc::new(l))
                    }
                    Err(f) => {
                        log!("cannot load model \"{}\": {}", config.key.model, f.message);
                        self.set_last_error(&f);
                        ModelState::Failed(f)
                    }
                };
                *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
                *self.state_for.lock().unwrap_or_else(|e| e.into_inner()) = Some(config.clone());
            }
            if let Some(batch) = self.next_batch(&config, generation, false) {
                self.serve(batch, &config, None);
                *self.last_batch.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            }
        }
    }

    /// Serves the queue workers' requests, batch by batch, with the model the inference thread
    /// loaded, on a pool of its own whose threads run at `queue_nice` (rebuilt when that or
    /// `threads` changes; a thread's priority cannot be raised again without a privilege).
    fn background_loop(&self) {
        let mut pool: Option<(usize, i32, rayon::ThreadPool)> = None;
        loop {
            let (config, generation) = self.config.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let ready = matches!(*self.state.read().unwrap_or_else(|e| e.into_inner()), ModelState::Ready(_) | ModelState::Failed(_));
            if !ready {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let Some(batch) = self.next_batch(&config, generation, true) else { continue };
            if !matches!(&pool, Some((t, n, _)) if *t == config.threads && *n == config.queue_nice) {
                let nice = config.queue_nice;
                let built = rayon::ThreadPoolBuilder::new()
                    .num_threads(config.threads)
                    .thread_name(|i| format!("biomed_ner-bg-{i}"))
                    .start_handler(move |_| backend::lower_thread_priority(nice))
                    .build();
                match built {
                    Ok(p) => pool = Some((config.threads, nice, p)),
                    Err(e) => {
                        let failure = Failure::new(
                            PgSqlErrorCode::ERRCODE_INSUFFICIENT_RESOURCES,
                            format!("could not start {} background inference threads: {e}", config.threads),
                            "Lower biomed_ner.threads in the server's configuration.",
                        );
                        for job in batch {
                            let _ = job.reply.send(Response::Failed { failure: failure.clone() });
                        }
                        continue;
                    }
                }
            }
            let texts: u64 = batch.iter().map(|j| j.texts.len() as u64).sum();
            self.serve(batch, &config, pool.as_ref().map(|(_, _, p)| p));
            self.stats.background_notes.fetch_add(texts, Ordering::Relaxed);
        }
    }

    /// Waits for requests of its kind (`background` or not), then (unless the service was idle,
    /// or the requests are background ones, which come in whole batches) for up to
    /// `batch_wait_ms` more while fewer than `batch_size` notes wait, and takes the oldest
    /// request with every other one of the same options (up to [`BATCH_CHARS`]). `None` when
    /// the configuration changed meanwhile.
    fn next_batch(&self, config: &ServiceConfig, generation: u64, background: bool) -> Option<Vec<Job>> {
        let changed = || self.config.lock().unwrap_or_else(|e| e.into_inner()).1 != generation;
        let mine = |j: &Job| j.background == background;
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            queue.retain(|j| !j.abandoned.load(Ordering::Relaxed));
            if changed() {
                return None;
            }
            if queue.iter().any(mine) {
                break;
            }
            queue = self.wake.wait_timeout(queue, Duration::from_secs(1)).unwrap_or_else(|e| e.into_inner()).0;
        }
        let idle = self.last_batch.lock().unwrap_or_else(|e| e.into_inner()).elapsed() > IDLE_AFTER;
        let wait = if idle || background { Duration::ZERO } else { Duration::from_millis(config.batch_wait_ms) };
        let deadline = Instant::now() + wait;
        loop {
            let waiting: usize = queue.iter().filter(|j| mine(j)).map(|j| j.texts.len()).sum();
            let now = Instant::now();
            if waiting >= config.batch_size || now >= deadline {
                break;
            }
            queue = self.wake.wait_timeout(queue, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        let key = queue.iter().find(|j| mine(j))?.key.clone();
        let mut batch = Vec::new();
        let mut chars = 0;
        let mut rest = VecDeque::with_capacity(queue.len());
        for job in queue.drain(..) {
            let size: usize = job.texts.iter().map(String::len).sum();
            if mine(&job) && job.key == key && (batch.is_empty() || chars + size <= BATCH_CHARS) {
                chars += size;
                batch.push(job);
            } else {
                rest.push_back(job);
            }
        }
        *queue = rest;
        Some(batch)
    }

    /// Runs a batch on the model's pool, or on `pool` (the background threads).
    fn serve(&self, batch: Vec<Job>, config: &ServiceConfig, pool: Option<&rayon::ThreadPool>) {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let loaded = match &*state {
            ModelState::Ready(l) => l.clone(),
            ModelState::Failed(f) => {
                for job in batch {
                    let _ = job.reply.send(Response::Failed { failure: f.clone() });
                }
                return;
            }
            ModelState::Loading => {
                // The model is being reloaded (a new configuration): serve it when it is back.
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                for job in batch.into_iter().rev() {
                    queue.push_front(job);
                }
                drop(queue);
                std::thread::sleep(Duration::from_millis(20));
                return;
            }
        };
        drop(state);
        let key = &batch[0].key;
        let opts = Options {
            aggregation: key.aggregation.parse().unwrap_or_default(),
            max_length: key.max_length,
            stride: key.stride,
            batch_size: config.batch_size,
            max_pass_bytes: config.max_pass_bytes,
            ..Options::default()
        };
        let texts: Vec<&str> = batch.iter().flat_map(|j| j.texts.iter().map(String::as_str)).collect();
        let abandoned = || batch.iter().all(|j| j.abandoned.load(Ordering::Relaxed));
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            pool.unwrap_or(&loaded.pool).install(|| {
                let mut check = || if abandoned() { Err(deberta_ner::Error::Cancelled) } else { Ok(()) };
                loaded.pipeline.annotate(&texts, &opts, &mut check)
            })
        }));
        let stats = &self.stats;
        match result {
            Ok(Ok(entities)) => {
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats.batched_notes.fetch_add(texts.len() as u64, Ordering::Relaxed);
                stats.notes.fetch_add(texts.len() as u64, Ordering::Relaxed);
                let mut entities = entities.into_iter();
                for job in batch {
                    let mine: Vec<Vec<WireEntity>> = entities
                        .by_ref()
                        .take(job.texts.len())
                        .map(|es| es.into_iter().map(WireEntity::from).collect())
                        .collect();
                    let _ = job.reply.send(Response::Entities { entities: mine });
                }
            }
            Ok(Err(deberta_ner::Error::Cancelled)) => {}
            // One request's error must not fail the others batched with it: serve them alone.
            _ if batch.len() > 1 => {
                for job in batch {
                    self.serve(vec![job], config, pool);
                }
            }
            Ok(Err(e)) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                let failure = Failure::engine(&e);
                self.set_last_error(&failure);
                let _ = batch[0].reply.send(Response::Failed { failure });
            }
            Err(panic) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                let failure = internal(format!("biomed_ner failed: {}", panic_message(&*panic)));
                log!("{}", failure.message);
                self.set_last_error(&failure);
                let _ = batch[0].reply.send(Response::Failed { failure });
            }
        }
    }
}

/// One short note through the model, so that the first caller does not pay for the first
/// touch of the weights and the threads' start.
fn warm_up(loaded: &Loaded) {
    let opts = Options::default();
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
        loaded.pool.install(|| loaded.pipeline.annotate(&["Fever and cough for three days."], &opts, &mut || Ok(())))
    }));
}

/// Loads the configured model with its own thread pool. The configuration is the server's,
/// so a folder is the administrator's choice; a name is looked up in `model_path`.
fn load(config: &ServiceConfig) -> Result<Loaded, Failure> {
    let ModelKey { model, device, dtype } = &config.key;
    // candle's matrix products size their work by this.
    deberta_ner::set_cpu_threads(Some(config.threads));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads)
        .thread_name(|i| format!("biomed_ner-{i}"))
        .build()
        .map_err(|e| {
            Failure::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_RESOURCES,
                format!("could not start {} inference threads: {e}", config.threads),
                "Lower biomed_ner.threads in the server's configuration.",
            )
        })?;
    let folder = if model.is_empty() {
        None
    } else if crate::access::is_model_name(model) {
        Some(crate::access::find_in_roots(model, &config.model_path)?)
    } else {
        Some(model.into())
    };
    let dtype = DtypeSetting::from_name(dtype);
    let (device, device_name) = backend::device_for(DeviceSetting::from_name(device), dtype)?;
    let precision = backend::precision_for(dtype);
    let pipeline = std::panic::catch_unwind(AssertUnwindSafe(|| {
        pool.install(|| backend::load_pipeline(folder.as_deref(), precision, &device))
    }))
    .map_err(|panic| internal(format!("loading the model failed: {}", panic_message(&*panic))))?
    .map_err(|e| Failure::load(&e, model))?;
    Ok(Loaded { pipeline, device_name, pool })
}
