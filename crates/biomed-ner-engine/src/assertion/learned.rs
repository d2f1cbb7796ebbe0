//! The learned stage: a multinomial logistic regression over the features of
//! [`super::features`], trained on MACCROBAT's train and dev splits by `train/assertion.py`
//! (its weights in `assertion_model.json`, read with serde).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::Assertion;

pub struct Learned {
    bias: [f32; 3],
    weights: HashMap<String, [f32; 3]>,
}

#[derive(Deserialize)]
struct LearnedFile {
    classes: Vec<String>,
    bias: Vec<f32>,
    weights: HashMap<String, Vec<f32>>,
}

impl Learned {
    pub fn from_json(json: &str) -> std::result::Result<Self, String> {
        let f: LearnedFile = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if f.classes != Assertion::NAMES || f.bias.len() != 3 || f.weights.values().any(|w| w.len() != 3) {
            return Err("the classes must be present, absent, possible with three weights each".into());
        }
        let three = |v: &[f32]| [v[0], v[1], v[2]];
        Ok(Self { bias: three(&f.bias), weights: f.weights.iter().map(|(k, v)| (k.clone(), three(v))).collect() })
    }

    pub fn classify(&self, features: &[String]) -> Assertion {
        let mut z = self.bias;
        for f in features {
            if let Some(w) = self.weights.get(f) {
                for c in 0..3 {
                    z[c] += w[c];
                }
            }
        }
        let best = (0..3).max_by(|&i, &j| z[i].total_cmp(&z[j])).expect("three classes");
        [Assertion::Present, Assertion::Absent, Assertion::Possible][best]
    }
}

/// The learned stage, unless `BIOMED_NER_ASSERTION=rules` asks for the rules alone.
pub(super) fn learned() -> Option<&'static Learned> {
    static MODEL: OnceLock<Option<Learned>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            if std::env::var("BIOMED_NER_ASSERTION").is_ok_and(|v| v == "rules") {
                return None;
            }
            let json = include_str!("../assertion_model.json");
            (!json.trim().is_empty()).then(|| Learned::from_json(json).expect("the bundled assertion model reads"))
        })
        .as_ref()
}
