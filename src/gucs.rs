//! The `biomed_ner.*` settings: registered once in `_PG_init`, read through typed getters.
//! Enumerated and numeric settings are checked by PostgreSQL itself, so an invalid value is
//! refused at `SET`.

use std::ffi::CString;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::PostgresGucEnum;

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

static MODEL: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));
static DEVICE: GucSetting<DeviceSetting> = GucSetting::<DeviceSetting>::new(DeviceSetting::Cpu);
static DTYPE: GucSetting<DtypeSetting> = GucSetting::<DtypeSetting>::new(DtypeSetting::F32);
static AGGREGATION: GucSetting<AggregationSetting> =
    GucSetting::<AggregationSetting>::new(AggregationSetting::Simple);
static MAX_LENGTH: GucSetting<i32> = GucSetting::<i32>::new(512);
static STRIDE: GucSetting<i32> = GucSetting::<i32>::new(128);
static BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(8);
static THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);
static MAX_CHARS: GucSetting<i32> = GucSetting::<i32>::new(1_000_000);

pub fn init() {
    GucRegistry::define_string_guc(
        c"biomed_ner.model",
        c"Model folder (Hugging Face layout) or hub cache snapshot; empty for the bundled model.",
        c"A folder with config.json, tokenizer.json and model.safetensors or pytorch_model.bin, readable by the server. The model loads once per backend, on first use, and again when this changes.",
        &MODEL,
        GucContext::Userset,
        GucFlags::default(),
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
        c"Floating-point type of the model weights and activations: f32, f16 or bf16.",
        c"f16 and bf16 halve memory and are fast on GPUs; on CPU f32 is both fastest and exact.",
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
        c"Each backend that runs biomed_ner uses this many threads; keep threads times concurrent sessions near the core count.",
        &THREADS,
        0,
        1024,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"biomed_ner.max_chars",
        c"Longest note, in characters, that biomed_ner accepts.",
        c"Longer notes raise an error (SQLSTATE 54000) instead of running for minutes.",
        &MAX_CHARS,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// `biomed_ner.model`, empty for the bundled model.
pub fn model() -> String {
    MODEL.get().map(|c| c.to_string_lossy().trim().to_string()).unwrap_or_default()
}

pub fn device() -> DeviceSetting {
    DEVICE.get()
}

pub fn dtype() -> DtypeSetting {
    DTYPE.get()
}

pub fn aggregation() -> deberta_ner::Aggregation {
    use deberta_ner::Aggregation as A;
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

/// Resolved thread count (0 means one per core).
pub fn threads() -> usize {
    match THREADS.get() {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n as usize,
    }
}

pub fn max_chars() -> usize {
    MAX_CHARS.get() as usize
}
