//! The model of this backend: loaded once, on first use, and again only when
//! `biomed_ner.model`, `device` or `dtype` change; and the threads it runs on.
//!
//! Inference runs inside this backend's own rayon pool, whose threads block every signal so
//! that PostgreSQL's signals reach the main thread. No PostgreSQL function is called from a
//! pool thread: the cancellation hook there only reads `InterruptPending`, and the main thread
//! then raises the actual error with `CHECK_FOR_INTERRUPTS()`.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use deberta_ner::assertion::Assertion;
use deberta_ner::{Device, Entity, Options, Pipeline, Precision};
use pgrx::{pg_sys, PgSqlErrorCode};

use crate::access;
use crate::encoding::{DbJsonb, Note, Utf8Note};
use crate::error::{raise, raise_engine, raise_load_error, Failure};
use crate::gucs::{self, DeviceSetting, DtypeSetting};

#[derive(Clone, PartialEq, Eq, Debug)]
struct ModelKey {
    model: String,
    device: DeviceSetting,
    dtype: DtypeSetting,
}

pub struct Loaded {
    key: ModelKey,
    pub pipeline: Pipeline,
    pub device_name: &'static str,
    pub calls: AtomicU64,
}

static MODEL: Mutex<Option<Arc<Loaded>>> = Mutex::new(None);
static POOL: Mutex<Option<(usize, i32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);

/// The nice value of this process's inference, or -1 for ordinary work: a queue worker sets
/// `biomed_ner.queue_nice` here, so that its inference yields the CPU to everything else.
static BACKGROUND_NICE: AtomicI32 = AtomicI32::new(-1);

/// Marks this process's inference as background work at `nice` (a queue worker, at its start
/// and after each reload).
pub fn set_background(nice: i32) {
    BACKGROUND_NICE.store(nice.clamp(0, 19), Ordering::Relaxed);
}

/// Whether this process's inference is background work (its calls to the inference service
/// say so).
pub fn is_background() -> bool {
    BACKGROUND_NICE.load(Ordering::Relaxed) >= 0
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

/// The pool for the current `biomed_ner.threads` (and, in a queue worker, `queue_nice`),
/// rebuilt when it changes.
fn pool() -> Arc<rayon::ThreadPool> {
    let threads = gucs::threads();
    let nice = BACKGROUND_NICE.load(Ordering::Relaxed).max(0);
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((n, level, p)) = guard.as_ref() {
        if *n == threads && *level == nice {
            return p.clone();
        }
    }
    // candle's matrix products size their work by this variable.
    deberta_ner::set_cpu_threads(Some(threads));
    // The inference threads allocate from the backend's one malloc arena, not each from its
    // own: a backend holds less memory, and keeps less of it as it serves (README, "Memory
    // allocation"). Before the threads start, so that none of them gets an arena of its own.
    deberta_ner::share_main_arena();
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("biomed_ner-{i}"))
        .start_handler(move |_| {
            block_signals();
            lower_thread_priority(nice);
        })
        .build()
        .unwrap_or_else(|e| {
            raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_RESOURCES,
                format!("could not start {threads} inference threads: {e}"),
                "Lower biomed_ner.threads.",
                "biomed_ner",
            )
        });
    let p = Arc::new(p);
    *guard = Some((threads, nice, p.clone()));
    p
}

/// Hands the memory the allocator holds free back to the system, at most once a second per
/// process. glibc's arenas otherwise keep a backend's freed tensor memory resident and
/// fragmented (soak.sh: backends grew 8-29% with no leak; with an allocator that returns freed
/// pages, within 1%). `malloc_trim` walks every arena, so it is rate-limited. Not used in the
/// inference service's model process: one process, whose single calls measured slower with it
/// (the released pages fault back in on the next batch).
pub fn release_free_memory() {
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let last = LAST_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 1000 && LAST_MS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        // Safety: plain libc call; it only releases memory the allocator holds free.
        unsafe { libc::malloc_trim(0) };
    }
}

/// Whether PostgreSQL has an interrupt it can process now (the test of
/// `INTERRUPTS_PENDING_CONDITION` and `INTERRUPTS_CAN_BE_PROCESSED`); safe to read from any
/// thread since it only reads volatile flags.
fn interrupt_pending() -> bool {
    // Safety: reads of sig_atomic_t / uint32 globals, written by signal handlers.
    unsafe {
        std::ptr::read_volatile(&raw const pg_sys::InterruptPending) != 0
            && std::ptr::read_volatile(&raw const pg_sys::InterruptHoldoffCount) == 0
            && std::ptr::read_volatile(&raw const pg_sys::CritSectionCount) == 0
    }
}

/// Runs `f` on the inference pool. Engine errors are raised with their SQLSTATE, a cancel
/// request or `statement_timeout` as PostgreSQL raises it (57014), a panic as an internal error.
fn run<R: Send>(function: &'static str, f: impl Fn(&mut dyn FnMut() -> deberta_ner::Result<()>) -> deberta_ner::Result<R> + Sync) -> R {
    run_with(function, f, |e| raise_engine(e, function))
}

fn run_with<R: Send>(
    function: &'static str,
    f: impl Fn(&mut dyn FnMut() -> deberta_ner::Result<()>) -> deberta_ner::Result<R> + Sync,
    on_error: impl Fn(deberta_ner::Error) -> R,
) -> R {
    let pool = pool();
    for _ in 0..8 {
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            pool.install(|| {
                let mut check = || if interrupt_pending() { Err(deberta_ner::Error::Cancelled) } else { Ok(()) };
                f(&mut check)
            })
        }));
        match result {
            Ok(Ok(r)) => {
                release_free_memory();
                return r;
            }
            // Let PostgreSQL process the interrupt: it raises for cancel and timeouts; for
            // anything else (a config reload, say) it returns and the work starts again.
            Ok(Err(deberta_ner::Error::Cancelled)) => {
                pgrx::check_for_interrupts!();
            }
            Ok(Err(e)) => return on_error(e),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                raise(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    format!("biomed_ner failed: {msg}"),
                    "This is a bug in biomed_ner; please report it with the input that caused it.",
                    function,
                )
            }
        }
    }
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "biomed_ner was interrupted too often to finish",
        "Retry the statement.",
        function,
    )
}

/// The device for `setting`: CUDA device 0, the CPU, or CUDA when usable (auto). Plain Rust,
/// also used by the inference service.
pub fn device_for(setting: DeviceSetting, dtype: DtypeSetting) -> Result<(Device, &'static str), Failure> {
    if dtype == DtypeSetting::Int8 {
        // int8 runs on the CPU only: auto means the CPU, cuda is refused.
        return match setting {
            DeviceSetting::Cpu | DeviceSetting::Auto => Ok((Device::Cpu, "cpu")),
            DeviceSetting::Cuda => Err(Failure::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "biomed_ner.dtype int8 runs on the CPU only, but biomed_ner.device is cuda",
                "SET biomed_ner.device = 'cpu' (or 'auto') for int8, or use biomed_ner.dtype = 'f16' or 'bf16' on the GPU.",
            )),
        };
    }
    match setting {
        DeviceSetting::Cpu => Ok((Device::Cpu, "cpu")),
        DeviceSetting::Auto => Ok(match deberta_ner::cuda_device(0) {
            Ok(d) => (d, "cuda"),
            Err(_) => (Device::Cpu, "cpu"),
        }),
        DeviceSetting::Cuda => deberta_ner::cuda_device(0).map(|d| (d, "cuda")).map_err(|e| {
            Failure::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("biomed_ner.device is cuda but no GPU is usable: {e}"),
                "Build biomed_ner with the cuda feature on a machine with an NVIDIA GPU, or SET biomed_ner.device = 'auto' (falls back to cpu) or 'cpu'.",
            )
        }),
    }
}

pub fn precision_for(setting: DtypeSetting) -> Precision {
    match setting {
        DtypeSetting::F32 => Precision::F32,
        DtypeSetting::F16 => Precision::F16,
        DtypeSetting::Bf16 => Precision::BF16,
        DtypeSetting::Int8 => Precision::Int8,
    }
}

/// This backend's model for the current settings, loading it if needed.
pub fn model(function: &'static str) -> Arc<Loaded> {
    let key = ModelKey { model: gucs::model(), device: gucs::device(), dtype: gucs::dtype() };
    {
        let guard = MODEL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = guard.as_ref().filter(|m| m.key == key) {
            return m.clone();
        }
    }
    let (device, device_name) = device_for(key.device, key.dtype).unwrap_or_else(|f| f.raise(true, function));
    let precision = precision_for(key.dtype);
    // Drop the old model before loading the new one, so two never share memory.
    *MODEL.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let source = access::resolve(&key.model, function);
    let pipeline = run_with(
        function,
        |_| load_pipeline(source.folder.as_deref(), precision, &device),
        |e| raise_load_error(e, &key.model, source.details, function),
    );
    let loaded = Arc::new(Loaded { key, pipeline, device_name, calls: AtomicU64::new(0) });
    *MODEL.lock().unwrap_or_else(|e| e.into_inner()) = Some(loaded.clone());
    loaded
}

/// The model of `folder`, or the bundled model for `None`. From the first model a process
/// loads, malloc keeps the engine's large buffers for reuse rather than mapping them afresh at
/// each operation ([`deberta_ner::tune_allocator`]; README, "Memory allocation").
pub fn load_pipeline(folder: Option<&std::path::Path>, precision: Precision, device: &Device) -> deberta_ner::Result<Pipeline> {
    deberta_ner::tune_allocator();
    match folder {
        None => load_bundled(precision, device),
        Some(folder) => Pipeline::load(folder, precision, device),
    }
}

/// What `biomed_ner_info()` says of a loaded model, in backend and service mode alike.
pub fn model_facts(pipeline: &Pipeline) -> serde_json::Map<String, serde_json::Value> {
    let cfg = pipeline.model.config();
    let types: std::collections::BTreeSet<&str> = cfg
        .labels
        .iter()
        .filter(|l| *l != "O")
        .map(|l| l.trim_start_matches("B-").trim_start_matches("I-"))
        .collect();
    let serde_json::Value::Object(facts) = serde_json::json!({
        "model": pipeline.origin,
        "bundled": pipeline.origin.starts_with("bundled:"),
        "labels": pipeline.labels(),
        "entity_types": types,
        "architecture": cfg.arch.model_type(),
        "layers": cfg.num_hidden_layers,
        "hidden_size": cfg.hidden_size,
        "dtype": pipeline.model.precision().name(),
        "load_seconds": (pipeline.load_seconds * 1000.0).round() / 1000.0,
    }) else {
        unreachable!("a json object")
    };
    facts
}

#[cfg(feature = "bundled-model")]
fn load_bundled(precision: Precision, device: &Device) -> deberta_ner::Result<Pipeline> {
    deberta_ner::bundled::load(precision, device)
}

#[cfg(not(feature = "bundled-model"))]
fn load_bundled(_: Precision, _: &Device) -> deberta_ner::Result<Pipeline> {
    Err(deberta_ner::Error::ModelNotFound { path: "(bundled model: this build has none)".into() })
}

/// Options from the settings (the engine checks how they combine).
pub fn options() -> Options {
    Options {
        aggregation: gucs::aggregation(),
        max_length: gucs::max_length(),
        stride: gucs::stride(),
        batch_size: gucs::batch_size(),
        max_pass_bytes: gucs::max_memory_bytes(),
        ..Options::default()
    }
}

/// Characters annotated in one call above which the backend hands freed memory back to the
/// system afterwards (glibc keeps it otherwise, and a backend that once read a very long note
/// would hold hundreds of megabytes until it exits).
const TRIM_AFTER_CHARS: usize = 200_000;

/// Raises 54000 for a note longer than `biomed_ner.max_chars`.
pub fn check_length(text: &str, function: &'static str) {
    let max_chars = gucs::max_chars();
    // Bytes bound characters from above: count only when the bytes exceed the limit.
    if text.len() > max_chars {
        let n = text.chars().count();
        if n > max_chars {
            raise(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("note of {n} characters exceeds biomed_ner.max_chars ({max_chars})"),
                "Raise biomed_ner.max_chars, or split the note.",
                function,
            );
        }
    }
}

/// Entities of each text, in order.
pub fn annotate(texts: &[&str], function: &'static str) -> Vec<Vec<Entity>> {
    for t in texts {
        check_length(t, function);
    }
    if let Some(out) = crate::service::annotate(texts, function) {
        return out;
    }
    let opts = options();
    let m = model(function);
    let out = run(function, |check| m.pipeline.annotate(texts, &opts, check));
    m.calls.fetch_add(texts.len() as u64, Ordering::Relaxed);
    if texts.iter().map(|t| t.len()).sum::<usize>() > TRIM_AFTER_CHARS {
        // Safety: plain glibc call; returns memory at the top of free heaps to the system.
        unsafe { libc::malloc_trim(0) };
    }
    out
}

/// A note's entities in the database's characters, each with its assertion where
/// `biomed_ner.assertion` is on.
pub struct Annotated {
    pub entities: Vec<Entity>,
    pub assertions: Option<Vec<Assertion>>,
}

impl Annotated {
    /// The entities in the pipeline's JSON shape, `"assertion"` last where it was asked for.
    pub fn to_jsonb(&self) -> DbJsonb {
        let json = self.entities.iter().enumerate().map(|(i, e)| {
            let mut v = e.to_json();
            if let (Some(a), Some(o)) = (&self.assertions, v.as_object_mut()) {
                o.insert("assertion".into(), a[i].as_str().into());
            }
            v
        });
        DbJsonb(serde_json::Value::Array(json.collect()))
    }
}

/// Entities of each possibly-NULL note, in the database's characters: NULL gives `None`, `''`
/// gives no entities, the others are converted to UTF-8 and annotated in one batched call.
/// Assertion, when on, runs here in the caller's backend on the code-point spans (also when the
/// service found the entities).
pub fn annotate_notes(items: &[Option<Note>], function: &'static str) -> Vec<Option<Annotated>> {
    let notes: Vec<Option<Utf8Note>> = items.iter().map(|n| n.map(|n| n.to_utf8(function))).collect();
    let texts: Vec<&str> = notes.iter().flatten().map(|n| n.text.as_ref()).filter(|t| !t.is_empty()).collect();
    crate::progress::annotating(items.len(), false);
    let mut results = if texts.is_empty() { Vec::new() } else { annotate(&texts, function) }.into_iter();
    crate::progress::annotating(items.len(), true);
    let assertion = gucs::assertion();
    // A cancel that came after the engine's last check is answered before the results are
    // converted and written.
    pgrx::check_for_interrupts!();
    notes
        .iter()
        .map(|note| {
            let note = note.as_ref()?;
            if note.text.is_empty() {
                return Some(Annotated { entities: Vec::new(), assertions: assertion.then(Vec::new) });
            }
            let entities = results.next().expect("one result per non-empty text");
            let assertions = assertion.then(|| {
                let spans: Vec<_> = entities.iter().map(|e| (e.start, e.end, Some(e.group.as_str()))).collect();
                deberta_ner::assertion::assert_spans(&note.text, &spans)
            });
            Some(Annotated { entities: note.in_database_chars(entities), assertions })
        })
        .collect()
}

/// [`annotate_notes`] as jsonb in the pipeline's shape.
pub fn annotate_nullable(items: &[Option<Note>], function: &'static str) -> Vec<Option<DbJsonb>> {
    annotate_notes(items, function).into_iter().map(|r| r.map(|a| a.to_jsonb())).collect()
}
