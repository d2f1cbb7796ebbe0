//! A spec's device and pipeline, with every refusal of a combination in one place.

use std::path::Path;

use biomed_ner_engine::{Device, Pipeline, Precision};

use crate::failure::{Failure, SqlState};
use crate::spec::{DeviceChoice, ModelSpec};

/// Where and how a spec's model runs: the device (and its name for `biomed_ner_info()`) and
/// the precision.
pub struct Target {
    pub device: Device,
    pub device_name: &'static str,
    pub precision: Precision,
}

/// The target of `spec`: CUDA device 0, the CPU, or CUDA when usable (auto). int8 runs on the
/// CPU only: with it auto means the CPU, and cuda is refused.
pub fn target(spec: &ModelSpec) -> Result<Target, Failure> {
    let precision = spec.precision;
    let cpu = || Ok(Target { device: Device::Cpu, device_name: "cpu", precision });
    match (spec.device, precision) {
        (DeviceChoice::Cpu, _) | (DeviceChoice::Auto, Precision::Int8) => cpu(),
        (DeviceChoice::Cuda, Precision::Int8) => Err(Failure::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "biomed_ner.dtype int8 runs on the CPU only, but biomed_ner.device is cuda",
            "SET biomed_ner.device = 'cpu' (or 'auto') for int8, or use biomed_ner.dtype = 'f16' or 'bf16' on the GPU.",
        )),
        (DeviceChoice::Auto, _) => match biomed_ner_engine::cuda_device(0) {
            Ok(device) => Ok(Target { device, device_name: "cuda", precision }),
            Err(_) => cpu(),
        },
        (DeviceChoice::Cuda, _) => match biomed_ner_engine::cuda_device(0) {
            Ok(device) => Ok(Target { device, device_name: "cuda", precision }),
            Err(e) => Err(Failure::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                format!("biomed_ner.device is cuda but no GPU is usable: {e}"),
                "Build biomed_ner with the cuda feature on a machine with an NVIDIA GPU, or SET biomed_ner.device = 'auto' (falls back to cpu) or 'cpu'.",
            )),
        },
    }
}

/// The model of `folder`, or the bundled model for `None`, on `target`. From the first model a
/// process loads, malloc keeps the engine's large buffers for reuse rather than mapping them
/// afresh at each operation ([`biomed_ner_engine::tune_allocator`]; README, "Memory allocation").
pub fn pipeline(folder: Option<&Path>, target: &Target) -> biomed_ner_engine::Result<Pipeline> {
    biomed_ner_engine::tune_allocator();
    match folder {
        None => bundled(target.precision, &target.device),
        Some(folder) => Pipeline::load(folder, target.precision, &target.device),
    }
}

#[cfg(feature = "bundled-model")]
fn bundled(precision: Precision, device: &Device) -> biomed_ner_engine::Result<Pipeline> {
    biomed_ner_engine::bundled::load(precision, device)
}

#[cfg(not(feature = "bundled-model"))]
fn bundled(_: Precision, _: &Device) -> biomed_ner_engine::Result<Pipeline> {
    Err(biomed_ner_engine::Error::ModelNotFound { path: "(bundled model: this build has none)".into() })
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
