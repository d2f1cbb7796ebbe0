//! The model of this backend: loaded once, on first use, and again only when
//! `biomed_ner.model`, `device` or `dtype` change; and the threads it runs on.
//!
//! Inference runs inside this backend's own rayon pool ([`biomed_ner_host::pool`]), whose
//! threads block every signal so that PostgreSQL's signals reach the main thread. No
//! PostgreSQL function is called from a pool thread: the cancellation hook there only reads
//! `InterruptPending`, and the main thread then raises the actual error with
//! `CHECK_FOR_INTERRUPTS()`.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use biomed_ner_host::failure::panic_message;
use biomed_ner_host::pool::{inference_pool, PoolRole};
use biomed_ner_host::{load, memory, ModelSpec};
use biomed_ner_engine::{Entity, Options, Pipeline};
use pgrx::{pg_sys, PgSqlErrorCode};

use crate::access;
use crate::error::{raise, raise_engine, raise_failure, raise_load_error};
use crate::{background, gucs};

pub struct Loaded {
    spec: ModelSpec,
    pub pipeline: Pipeline,
    pub device_name: &'static str,
    pub calls: AtomicU64,
}

static MODEL: Mutex<Option<Arc<Loaded>>> = Mutex::new(None);
static POOL: Mutex<Option<(usize, i32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);

/// The pool for the current `biomed_ner.threads` (and, in a queue worker, `queue_nice`),
/// rebuilt when it changes.
fn pool(function: &'static str) -> Arc<rayon::ThreadPool> {
    let threads = gucs::threads();
    let nice = background::nice();
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((n, level, p)) = guard.as_ref() {
        if *n == threads && *level == nice {
            return p.clone();
        }
    }
    let p = inference_pool(threads, PoolRole::Backend { nice }).unwrap_or_else(|f| raise_failure(&f, true, function));
    let p = Arc::new(p);
    *guard = Some((threads, nice, p.clone()));
    p
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

/// Runs `f` on the inference pool, then applies the memory policy for `text_bytes` of text
/// ([`memory::after_call`]). Engine errors go to `on_error`; a cancel request or
/// `statement_timeout` is raised as PostgreSQL raises it (57014), a panic as an internal error.
fn run_with<R: Send>(
    function: &'static str,
    text_bytes: usize,
    f: impl Fn(&mut dyn FnMut() -> biomed_ner_engine::Result<()>) -> biomed_ner_engine::Result<R> + Sync,
    on_error: impl Fn(biomed_ner_engine::Error) -> R,
) -> R {
    let pool = pool(function);
    for _ in 0..8 {
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            pool.install(|| {
                let mut check = || if interrupt_pending() { Err(biomed_ner_engine::Error::Cancelled) } else { Ok(()) };
                f(&mut check)
            })
        }));
        match result {
            Ok(Ok(r)) => {
                memory::after_call(text_bytes);
                return r;
            }
            // Let PostgreSQL process the interrupt: it raises for cancel and timeouts; for
            // anything else (a config reload, say) it returns and the work starts again.
            Ok(Err(biomed_ner_engine::Error::Cancelled)) => {
                pgrx::check_for_interrupts!();
            }
            Ok(Err(e)) => return on_error(e),
            Err(panic) => raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("biomed_ner failed: {}", panic_message(&*panic)),
                "This is a bug in biomed_ner; please report it with the input that caused it.",
                function,
            ),
        }
    }
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "biomed_ner was interrupted too often to finish",
        "Retry the statement.",
        function,
    )
}

/// This backend's model for the current settings, loading it if needed.
pub fn model(function: &'static str) -> Arc<Loaded> {
    let spec = gucs::spec();
    {
        let guard = MODEL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = guard.as_ref().filter(|m| m.spec.same_model(&spec)) {
            return m.clone();
        }
    }
    let target = load::target(&spec).unwrap_or_else(|f| raise_failure(&f, true, function));
    // Drop the old model before loading the new one, so two never share memory.
    *MODEL.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let source = access::resolve(&spec.model, &gucs::model_path(), function);
    let pipeline = run_with(
        function,
        0,
        |_| load::pipeline(source.folder.as_deref(), &target),
        |e| raise_load_error(e, &spec.model, source.details, function),
    );
    let loaded = Arc::new(Loaded { spec, pipeline, device_name: target.device_name, calls: AtomicU64::new(0) });
    *MODEL.lock().unwrap_or_else(|e| e.into_inner()) = Some(loaded.clone());
    loaded
}

/// The engine's options from the settings.
pub fn options() -> Options {
    gucs::call_options().engine_options(gucs::batch_size(), gucs::max_memory_bytes())
}

/// Entities of each text, from this backend's model.
pub fn annotate(texts: &[&str], function: &'static str) -> Vec<Vec<Entity>> {
    let opts = options();
    let m = model(function);
    let bytes = texts.iter().map(|t| t.len()).sum();
    let out = run_with(function, bytes, |check| m.pipeline.annotate(texts, &opts, check), |e| raise_engine(e, function));
    m.calls.fetch_add(texts.len() as u64, Ordering::Relaxed);
    out
}
