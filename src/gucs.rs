//! The `biomed_ner.*` settings: registered once in `_PG_init`, read through typed getters.
//! Enumerated and numeric settings are checked by PostgreSQL itself, so an invalid value is
//! refused at `SET`.
//!
//! Who may change what: every role may tune how its own calls run (aggregation, windows, batch
//! size, threads up to `max_threads`) and choose a model by name from the folders an
//! administrator lists in `model_path`. Only superusers (and the server's configuration) set
//! the ceilings (`max_threads`, `max_memory`, `max_chars`) and `model_path`, and only
//! superusers and members of `pg_read_server_files` may point `model` at any folder
//! ([`crate::access`]).

use std::ffi::{c_char, c_void, CStr, CString};

use biomed_ner_host::{CallOptions, DeviceChoice, ModelSpec};
use biomed_ner_engine::{Aggregation, Precision};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::{pg_sys, PostgresGucEnum};

// The enumerated settings' values are declared for PostgreSQL here (pgrx derives their
// tables); each maps onto the host's or the engine's one type below, whose names match.

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeviceSetting {
    #[name = c"cpu"]
    Cpu,
    #[name = c"cuda"]
    Cuda,
    #[name = c"auto"]
    Auto,
}

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum DtypeSetting {
    #[name = c"f32"]
    F32,
    #[name = c"f16"]
    F16,
    #[name = c"bf16"]
    Bf16,
    #[name = c"int8"]
    Int8,
}

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum AggregationSetting {
    #[name = c"none"]
    None,
    #[name = c"simple"]
    Simple,
    #[name = c"first"]
    First,
    #[name = c"average"]
    Average,
    #[name = c"max"]
    Max,
}

/// Where calls run: `backend` (each backend its own model), `service` (the shared inference
/// service), `auto` (the service when biomed_ner is preloaded, else the backend).
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExecutionSetting {
    #[name = c"auto"]
    Auto,
    #[name = c"backend"]
    Backend,
    #[name = c"service"]
    Service,
}

static EXECUTION: GucSetting<ExecutionSetting> = GucSetting::<ExecutionSetting>::new(ExecutionSetting::Auto);
static BATCH_WAIT_MS: GucSetting<i32> = GucSetting::<i32>::new(2);
static WORKERS: GucSetting<i32> = GucSetting::<i32>::new(1);
static QUEUE_DATABASES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));
static QUEUE_BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(64);
static QUEUE_PAUSE_MS: GucSetting<i32> = GucSetting::<i32>::new(0);
static QUEUE_NICE: GucSetting<i32> = GucSetting::<i32>::new(10);
static QUEUE_BATCH_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(300_000);
static MODEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));
static DEVICE: GucSetting<DeviceSetting> = GucSetting::<DeviceSetting>::new(DeviceSetting::Cpu);
static DTYPE: GucSetting<DtypeSetting> = GucSetting::<DtypeSetting>::new(DtypeSetting::F32);
static ASSERTION: GucSetting<bool> = GucSetting::<bool>::new(false);
static AGGREGATION: GucSetting<AggregationSetting> =
    GucSetting::<AggregationSetting>::new(AggregationSetting::Simple);
static MAX_LENGTH: GucSetting<i32> = GucSetting::<i32>::new(512);
static STRIDE: GucSetting<i32> = GucSetting::<i32>::new(128);
static BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(8);
static THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);
static MAX_CHARS: GucSetting<i32> = GucSetting::<i32>::new(1_000_000);
static MODEL_PATH: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));
static MAX_THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);
static MAX_MEMORY_MB: GucSetting<i32> = GucSetting::<i32>::new(2048);

/// Set while [`init`] defines the settings: PostgreSQL then turns the values a session set
/// before the library was loaded (placeholders) into real ones, calling [`check_model`] in
/// whatever context loaded the library, a SECURITY DEFINER function's included.
static LOADING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Refuses, at `SET` (and `ALTER ROLE/DATABASE ... SET`, `set_config`, a function's `SET`), a
/// model folder path from a role that may not read server files. Names and `''` pass; the
/// server's own configuration is trusted. A value set before the library was loaded is checked
/// when it loads against the session's login role: the current role then may be a SECURITY
/// DEFINER function's owner, who did not choose it (refused, it stays at the server's value
/// with a WARNING).
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_model(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pgrx::pg_sys::GucSource::Type,
) -> bool {
    // Safety: PostgreSQL passes a valid pointer to a NUL-terminated string (or NULL).
    let value = unsafe { (*newval).as_ref().map(|p| CStr::from_ptr(p).to_string_lossy().trim().to_string()) };
    let value = value.unwrap_or_default();
    if value.is_empty() || biomed_ner_host::model_path::is_model_name(&value) || source <= pg_sys::GucSource::PGC_S_ARGV {
        return true;
    }
    let allowed = if LOADING.load(std::sync::atomic::Ordering::Relaxed) {
        crate::access::session_user_may_read_server_files()
    } else {
        crate::access::may_read_server_files()
    };
    if allowed {
        return true;
    }
    // Safety: the GUC_check_err* globals take palloc'd strings, as GUC_check_errmsg() does.
    unsafe {
        pg_sys::GUC_check_errcode(pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
        pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(crate::access::FOLDER_REFUSED.as_ptr());
        pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(crate::access::FOLDER_REFUSED_HINT.as_ptr());
    }
    false
}

pub fn init() {
    LOADING.store(true, std::sync::atomic::Ordering::Relaxed);
    define();
    LOADING.store(false, std::sync::atomic::Ordering::Relaxed);
}

fn define() {
    // Safety: the check hook is a #[pg_guard] function.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"biomed_ner.model",
            c"Model to use: a name from biomed_ner.model_path, a folder (superusers and pg_read_server_files only), or empty for the bundled model.",
            c"A model is a folder with config.json, a tokenizer (tokenizer.json, vocab.txt, spm.model or sentencepiece.bpe.model) and model.safetensors or pytorch_model.bin, readable by the server (Hugging Face layout, or a hub cache folder). The model loads once per backend, on first use, and again when this changes.",
            &MODEL,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_model),
            None,
            None,
        );
    }
    GucRegistry::define_string_guc(
        c"biomed_ner.model_path",
        c"Folders, separated by ':', whose models every role may choose by name with biomed_ner.model.",
        c"SET biomed_ner.model = 'NAME' loads the folder NAME of the first of these folders that has one. Names are one path component; links out of these folders are refused. Superusers only.",
        &MODEL_PATH,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"biomed_ner.max_threads",
        c"Most CPU threads one backend may use for inference; 0 means one per core.",
        c"biomed_ner.threads is capped at this. Superusers only.",
        &MAX_THREADS,
        0,
        1024,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"biomed_ner.max_memory",
        c"Most memory one forward pass may use for its activations (estimated before it runs).",
        c"Batches over it are cut into smaller ones; a window that needs more alone is refused (SQLSTATE 54000) instead of asking the system for it. Bounds what max_length and batch_size can ask for. Superusers only.",
        &MAX_MEMORY_MB,
        16,
        1 << 20,
        GucContext::Suset,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_enum_guc(
        c"biomed_ner.device",
        c"Where the model runs: cpu, cuda, or auto (cuda when usable, else cpu).",
        c"cuda needs a build with the cuda feature and a usable GPU; each backend then holds its own copy of the model on the GPU.",
        &DEVICE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"biomed_ner.dtype",
        c"Numeric type of the model: f32, f16, bf16, or int8 (CPU only: the encoder's projections quantised to int8).",
        c"f16 and bf16 halve memory and are fast on GPUs; on a CPU with AVX-512 VNNI int8 is 2 to 3 times as fast as f32 and keeps almost every entity; f32 is exact.",
        &DTYPE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"biomed_ner.aggregation",
        c"How token labels become entities, as the Hugging Face pipeline's aggregation_strategy.",
        c"none returns one entry per token; simple (default), first, average and max group tokens into entities.",
        &AGGREGATION,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"biomed_ner.assertion",
        c"Adds \"assertion\" (present, absent or possible) to every entity that biomed_ner finds.",
        c"Off by default, so entities keep the Hugging Face pipeline's shape. On, a finding that is negated (\"no fever\") is absent and one that is uncertain (\"pneumonia could not be excluded\") is possible; biomed_ner_entities fills its assertion column.",
        &ASSERTION,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"biomed_ner.max_length",
        c"Tokens per window, special tokens included.",
        c"Longer notes are cut into overlapping windows of this many tokens.",
        &MAX_LENGTH,
        8,
        1_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"biomed_ner.stride",
        c"Tokens shared by consecutive windows of a long note.",
        c"Must be smaller than max_length minus the special tokens.",
        &STRIDE,
        0,
        1_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"biomed_ner.batch_size",
        c"Windows per forward pass.",
        c"Larger batches are faster on GPUs; on CPU 8 is a good value.",
        &BATCH_SIZE,
        1,
        4096,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"biomed_ner.threads",
        c"CPU threads for one backend's inference; 0 means one per core.",
        c"Each backend that runs biomed_ner uses this many threads, at most biomed_ner.max_threads; keep threads times concurrent sessions near the core count.",
        &THREADS,
        0,
        1024,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"biomed_ner.execution",
        c"Where calls run: auto (the shared inference service when biomed_ner is preloaded, else this backend), backend, or service.",
        c"The service runs the model of the server's configuration for every session; a session whose biomed_ner.model, device or dtype differ from it runs its calls in its own backend under auto, and is refused under service.",
        &EXECUTION,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"biomed_ner.batch_wait_ms",
        c"How long the inference service waits for more requests to fill a batch.",
        c"Once a request arrives, the service waits up to this long while fewer than batch_size notes are queued, then runs what it has. 0 runs at once. Server configuration only.",
        &BATCH_WAIT_MS,
        0,
        1000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"biomed_ner.workers",
        c"Model processes of the inference service.",
        c"Each holds one copy of the model and runs one batch at a time, on biomed_ner.threads threads. Lowering it ends the extra processes (calls they are serving fail with SQLSTATE 58000). Server configuration only.",
        &WORKERS,
        1,
        64,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"biomed_ner.queue_databases",
        c"Databases, separated by commas, whose watched tables a queue worker drains.",
        c"Needs biomed_ner in shared_preload_libraries; one worker per database (each takes a background worker slot, see max_worker_processes). Server configuration only.",
        &QUEUE_DATABASES,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"biomed_ner.queue_batch_size",
        c"Pending rows of a watched table a queue worker annotates per transaction.",
        c"Each batch is one transaction: pending rows read, annotated in one batched call, written where their text is unchanged. Server configuration only.",
        &QUEUE_BATCH_SIZE,
        1,
        10_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"biomed_ner.queue_pause_ms",
        c"Pause of a queue worker after each batch, to throttle a backfill on a busy server.",
        c"0 works through the pending rows without pausing. Server configuration only.",
        &QUEUE_PAUSE_MS,
        0,
        60_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"biomed_ner.queue_nice",
        c"Scheduling priority (nice value) of the queue's inference.",
        c"The threads that annotate pending rows run at this nice value, so that on a busy server they take only the CPU that inserts and queries leave: in the inference service a second set of threads that shares its model, in a queue worker without the service the worker's own. 0 runs them like any other work. Server configuration only.",
        &QUEUE_NICE,
        0,
        19,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"biomed_ner.queue_batch_timeout",
        c"Longest time a queue worker gives one batch of a watched table.",
        c"A batch that runs longer (a slow trigger of the table, say) is cancelled and its table's last_error says so; the worker then leaves that table alone for ten times as long as the batch took (at most an hour) and goes on with the others. 0 means no limit. Server configuration only.",
        &QUEUE_BATCH_TIMEOUT_MS,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"biomed_ner.max_chars",
        c"Longest note, in characters, that biomed_ner accepts.",
        c"Longer notes raise an error (SQLSTATE 54000) instead of running for minutes. Superusers only.",
        &MAX_CHARS,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// `biomed_ner.model`, empty for the bundled model.
pub fn model() -> String {
    MODEL.get().map(|c| c.to_string_lossy().trim().to_string()).unwrap_or_default()
}

/// The model the settings ask for: `model`, `device`, `dtype` and `threads`.
pub fn spec() -> ModelSpec {
    let device = match DEVICE.get() {
        DeviceSetting::Cpu => DeviceChoice::Cpu,
        DeviceSetting::Cuda => DeviceChoice::Cuda,
        DeviceSetting::Auto => DeviceChoice::Auto,
    };
    let precision = match DTYPE.get() {
        DtypeSetting::F32 => Precision::F32,
        DtypeSetting::F16 => Precision::F16,
        DtypeSetting::Bf16 => Precision::BF16,
        DtypeSetting::Int8 => Precision::Int8,
    };
    ModelSpec { model: model(), device, precision, threads: threads() }
}

/// The per-call options: `aggregation`, `max_length` and `stride`.
pub fn call_options() -> CallOptions {
    CallOptions { aggregation: aggregation(), max_length: max_length(), stride: stride() }
}

/// `biomed_ner.assertion`: whether entities carry their assertion.
pub fn assertion() -> bool {
    ASSERTION.get()
}

fn aggregation() -> Aggregation {
    use Aggregation as A;
    match AGGREGATION.get() {
        AggregationSetting::None => A::None,
        AggregationSetting::Simple => A::Simple,
        AggregationSetting::First => A::First,
        AggregationSetting::Average => A::Average,
        AggregationSetting::Max => A::Max,
    }
}

pub fn max_length() -> usize {
    MAX_LENGTH.get() as usize
}

pub fn stride() -> usize {
    STRIDE.get() as usize
}

pub fn batch_size() -> usize {
    BATCH_SIZE.get() as usize
}

/// A thread-count setting's value; 0 means one per core.
fn thread_count(setting: &GucSetting<i32>) -> usize {
    match setting.get() {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n as usize,
    }
}

/// Resolved thread count: `threads`, capped at `max_threads`.
pub fn threads() -> usize {
    thread_count(&THREADS).min(thread_count(&MAX_THREADS)).max(1)
}

/// `biomed_ner.model_path`, its folders in order.
pub fn model_path() -> Vec<String> {
    let value = MODEL_PATH.get().map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
    value.split(':').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// `biomed_ner.max_memory` in bytes.
pub fn max_memory_bytes() -> usize {
    (MAX_MEMORY_MB.get().max(1) as usize) << 20
}

pub fn max_chars() -> usize {
    MAX_CHARS.get() as usize
}

pub fn execution() -> ExecutionSetting {
    EXECUTION.get()
}

pub fn batch_wait_ms() -> u64 {
    BATCH_WAIT_MS.get().max(0) as u64
}

pub fn workers() -> usize {
    WORKERS.get().max(1) as usize
}

/// `biomed_ner.queue_databases`, its names in order, without duplicates.
pub fn queue_databases() -> Vec<String> {
    let value = QUEUE_DATABASES.get().map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

pub fn queue_batch_size() -> usize {
    QUEUE_BATCH_SIZE.get().max(1) as usize
}

pub fn queue_pause_ms() -> u64 {
    QUEUE_PAUSE_MS.get().max(0) as u64
}

/// `biomed_ner.queue_batch_timeout` in milliseconds; 0: no limit.
pub fn queue_batch_timeout_ms() -> i32 {
    QUEUE_BATCH_TIMEOUT_MS.get().max(0)
}

pub fn queue_nice() -> i32 {
    QUEUE_NICE.get().clamp(0, 19)
}

/// Reloads the server's configuration file when a SIGHUP came since the last look (the
/// documented way for a background worker); true when it did.
pub fn reload_on_sighup() -> bool {
    if !pgrx::bgworkers::BackgroundWorker::sighup_received() {
        return false;
    }
    // Safety: called from a background worker's main loop, outside any transaction.
    unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
    true
}
