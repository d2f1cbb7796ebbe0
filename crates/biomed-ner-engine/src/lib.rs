//! Token classification in Rust on candle (DeBERTa-v2/v3, BERT, DistilBERT, RoBERTa, XLM-R and
//! ELECTRA checkpoints: [`arch`]), giving the same entities as the Hugging Face
//! `token-classification` pipeline from the same weights, with code-point offsets.
//!
//! ```no_run
//! use biomed_ner_engine::{Pipeline, Options};
//! let p = Pipeline::load("model-dir".as_ref(), biomed_ner_engine::Precision::F32, &candle_core::Device::Cpu)?;
//! let entities = p.annotate(&["Aspirin 81 mg daily."], &Options::default(), &mut || Ok(()))?;
//! # Ok::<(), biomed_ner_engine::Error>(())
//! ```

pub mod aggregate;
pub mod assertion;
pub mod allocator;
pub mod arch;
pub mod attention;
pub mod bmm;
#[cfg(feature = "bundled-model")]
pub mod bundled;
pub mod config;
pub mod error;
pub mod fused;
pub mod html;
pub mod linear;
pub mod model_dir;
pub mod pickle_guard;
pub mod pipeline;
pub mod vector;
pub mod windows;
pub mod sentencepiece;
pub mod wordpiece;

pub use aggregate::{Aggregation, Entity};
pub use allocator::{share_main_arena, tune_allocator};
pub use arch::{Stage, TokenClassifier};
pub use config::{Arch, Config};
pub use error::{Error, Result};
pub use model_dir::ModelFiles;
pub use pipeline::{Options, Pipeline};
pub use candle_core::{DType, Device};

/// Sets the CPU threads of candle's kernels, before the first inference of the process (the
/// settings are process-wide environment variables, read when candle starts its threads):
/// - `threads`, when given, sizes candle's matrix products (`RAYON_NUM_THREADS`); callers run
///   the engine inside a rayon pool of that width;
/// - element-wise operations on large tensors run on the calling thread rather than in
///   candle's own process-wide pool of spinning threads (`CANDLE_NUM_THREADS=1`), unless the
///   environment sets `CANDLE_NUM_THREADS`. That pool sits beside the caller's threads, so
///   on a small machine it oversubscribes the cores (the engine is faster without it there:
///   bench/results/README.md, "Engine figures behind the code"), and its threads would escape
///   the priority of a caller's pool.
pub fn set_cpu_threads(threads: Option<usize>) {
    if let Some(n) = threads {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// The kernel the int8 projections (`dtype = int8`) use on this CPU: `"amx"` (Intel AMX
/// tiles, where the CPU has AMX-INT8 and the operating system grants the tile state),
/// `"avx512-vnni"`, `"avx2"` or `"portable"`; `DEBERTA_NER_INT8_KERNEL=vnni|avx2|portable`
/// chooses a slower one, and `DEBERTA_NER_NO_AMX` (set) leaves AMX unused for int8 and bf16. Chosen on the first call (or first int8 product) and fixed after.
pub fn cpu_kernels() -> &'static str {
    linear::int8::Kernel::best().name()
}

/// How a model computes: its weights' dtype, or int8 projections over f32 weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    F32,
    F16,
    BF16,
    /// CPU only: the encoder layers' projections (query/key/value, attention output,
    /// intermediate, output) quantised to int8 at load and computed with int8 inputs and i32
    /// sums ([`int8`]); embeddings, layer norms, attention and the classifier in f32.
    Int8,
}

impl Precision {
    /// The name [`parse_dtype`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::BF16 => "bf16",
            Precision::Int8 => "int8",
        }
    }

    /// The dtype weights are read in on `device`: f32 for int8, and for bf16 on a CPU with
    /// AVX-512 BF16 (its projections are then rounded to bf16 and run on
    /// [`linear::Bf16Linear`], everything else in f32).
    pub fn load_dtype(self, device: &Device) -> DType {
        match self {
            Precision::BF16 if device.is_cpu() && linear::bf16::available() => DType::F32,
            _ => self.dtype(),
        }
    }

    /// The dtype of the model's weights and activations where no CPU kernel of
    /// [`linear`] changes it ([`Self::load_dtype`]).
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 | Precision::Int8 => DType::F32,
            Precision::F16 => DType::F16,
            Precision::BF16 => DType::BF16,
        }
    }
}

/// Parses a dtype name: `f32`, `f16`, `bf16` or `int8`.
pub fn parse_dtype(s: &str) -> Result<Precision> {
    match s.to_ascii_lowercase().as_str() {
        "f32" | "float32" => Ok(Precision::F32),
        "f16" | "float16" => Ok(Precision::F16),
        "bf16" | "bfloat16" => Ok(Precision::BF16),
        "int8" => Ok(Precision::Int8),
        _ => Err(Error::InvalidOption(format!("dtype \"{s}\" (expected f32, f16, bf16 or int8)"))),
    }
}

/// The device for `cpu`, `cuda` (or `cuda:N`), or `auto` (CUDA when usable, else CPU).
pub fn parse_device(s: &str) -> Result<Device> {
    let s = s.to_ascii_lowercase();
    let cuda = |ordinal: usize| {
        cuda_device(ordinal).map_err(|e| Error::InvalidOption(format!("no usable CUDA device {ordinal}: {e}")))
    };
    match s.as_str() {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(cuda(0).unwrap_or(Device::Cpu)),
        "cuda" => cuda(0),
        _ => match s.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => cuda(n),
            None => Err(Error::InvalidOption(format!("device \"{s}\" (expected cpu, cuda, cuda:N or auto)"))),
        },
    }
}

/// CUDA device `ordinal`, set up for this crate's one-stream use: no per-tensor event tracking
/// (every tensor of a model lives on the calling thread's stream), and a memory pool that keeps
/// what it has allocated instead of returning it to the driver at every synchronization (the
/// logits' copy to the host is one), so a pass reuses the previous pass's memory. The pool
/// therefore holds the peak of the largest batch until the process ends.
pub fn cuda_device(ordinal: usize) -> std::result::Result<Device, candle_core::Error> {
    let device = Device::new_cuda(ordinal)?;
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = &device {
        use candle_core::cuda_backend::cudarc::driver::sys;
        // SAFETY: a model's tensors are used from one stream only (see above).
        unsafe { d.disable_event_tracking() };
        let stream = d.cuda_stream();
        let cu_device = stream.context().cu_device();
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        let mut threshold = u64::MAX;
        // SAFETY: plain driver calls on a valid device; the attribute takes a u64.
        let status = unsafe {
            match sys::cuDeviceGetDefaultMemPool(&mut pool, cu_device) {
                sys::CUresult::CUDA_SUCCESS => sys::cuMemPoolSetAttribute(
                    pool,
                    sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                    (&mut threshold as *mut u64).cast(),
                ),
                e => e,
            }
        };
        if status != sys::CUresult::CUDA_SUCCESS {
            candle_core::bail!("cannot configure the CUDA memory pool: {status:?}");
        }
    }
    Ok(device)
}

/// For tests that need a GPU: CUDA device 0, or `None` (saying so on stderr) where none is usable,
/// so that they pass on machines without one.
#[cfg(all(test, feature = "cuda"))]
pub(crate) fn test_cuda_device(test: &str) -> Option<Device> {
    match cuda_device(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("no usable CUDA device ({e}): {test} skipped");
            None
        }
    }
}
