//! What a model and a call are, as the settings choose them and the socket carries them.

use biomed_ner_engine::{Aggregation, Options, Precision};
use serde::{Deserialize, Serialize};

/// A setting's values, each with its one name: named on the wire as in SQL, and an unknown
/// name is an error, never a default.
pub trait Named: Copy + PartialEq + 'static {
    /// What the setting is called, for errors.
    const SETTING: &'static str;
    const ALL: &'static [Self];
    fn name(self) -> &'static str;

    /// The value `name` names.
    fn from_name(name: &str) -> Result<Self, String> {
        Self::ALL.iter().copied().find(|v| v.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|v| v.name()).collect();
            format!("{} \"{name}\" is not one of {}", Self::SETTING, names.join(", "))
        })
    }
}

/// Serde by [`Named::name`]: `#[serde(with = "named")]`.
pub mod named {
    use super::Named;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Named, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value.name())
    }

    pub fn deserialize<'de, T: Named, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        T::from_name(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// `biomed_ner.device`: where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda,
    /// CUDA when usable, else the CPU.
    Auto,
}

impl Named for DeviceChoice {
    const SETTING: &'static str = "biomed_ner.device";
    const ALL: &'static [Self] = &[DeviceChoice::Cpu, DeviceChoice::Cuda, DeviceChoice::Auto];
    fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Auto => "auto",
        }
    }
}

/// `biomed_ner.dtype`: the engine's precisions, by the engine's names.
impl Named for Precision {
    const SETTING: &'static str = "biomed_ner.dtype";
    const ALL: &'static [Self] = &[Precision::F32, Precision::F16, Precision::BF16, Precision::Int8];
    fn name(self) -> &'static str {
        Precision::name(self)
    }
}

/// `biomed_ner.aggregation`, by the engine's names.
impl Named for Aggregation {
    const SETTING: &'static str = "biomed_ner.aggregation";
    const ALL: &'static [Self] = &[Aggregation::None, Aggregation::Simple, Aggregation::First, Aggregation::Average, Aggregation::Max];
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// A model to run: `biomed_ner.model` (a name, a folder, or empty for the bundled model),
/// `device`, `dtype` and `threads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub model: String,
    #[serde(with = "named")]
    pub device: DeviceChoice,
    #[serde(with = "named")]
    pub precision: Precision,
    pub threads: usize,
}

impl ModelSpec {
    /// Whether `other` asks for the same model: the same weights, device and precision
    /// (threads only change how it runs).
    pub fn same_model(&self, other: &ModelSpec) -> bool {
        self.model == other.model && self.device == other.device && self.precision == other.precision
    }
}

/// The options a session chooses for each call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallOptions {
    #[serde(with = "named")]
    pub aggregation: Aggregation,
    pub max_length: usize,
    pub stride: usize,
}

impl CallOptions {
    /// The engine's options for these, batched `batch_size` windows at a time within
    /// `max_pass_bytes` (the engine checks how they combine).
    pub fn engine_options(&self, batch_size: usize, max_pass_bytes: usize) -> Options {
        Options {
            aggregation: self.aggregation,
            max_length: self.max_length,
            stride: self.stride,
            batch_size,
            max_pass_bytes,
            ..Options::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_and_unknown_names_are_refused() {
        let spec = ModelSpec { model: "m".into(), device: DeviceChoice::Auto, precision: Precision::Int8, threads: 3 };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(json, r#"{"model":"m","device":"auto","precision":"int8","threads":3}"#);
        assert_eq!(serde_json::from_str::<ModelSpec>(&json).unwrap(), spec);
        let bad = json.replace("int8", "f64");
        let e = serde_json::from_str::<ModelSpec>(&bad).unwrap_err().to_string();
        assert!(e.contains("biomed_ner.dtype \"f64\" is not one of f32, f16, bf16, int8"), "{e}");
        assert!(serde_json::from_str::<ModelSpec>(&json.replace("auto", "gpu")).is_err());
        for p in Precision::ALL {
            assert_eq!(<Precision as Named>::from_name(p.name()), Ok(*p));
        }
        assert!(spec.same_model(&ModelSpec { threads: 1, ..spec.clone() }));
    }
}
