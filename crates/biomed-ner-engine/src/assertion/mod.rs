//! Clinical assertion: is an entity's finding present, absent (negated) or only possible
//! (uncertain, suspected, to be ruled out)? A rule engine in the manner of NegEx and ConText,
//! with trigger lists of its own, that works on any entities' character spans, from any model.
//!
//! - The text is cut into tokens (runs of letters and digits, each other non-space character
//!   alone), lower-cased into one string, and sentences (a line break; `.`, `!` or `?` followed
//!   by space and a character that is not lower-case) (module `text`). All positions are code
//!   points, like entity offsets; memory is a few bytes per byte of the note.
//! - Triggers are phrases of tokens with a category (absent, possible) and a direction: forward
//!   ("no", "denied", "suspicion of") reaches entities after it, backward ("was negative",
//!   "was ruled out", "unlikely") entities before it. Pseudo-triggers ("no change", "gram
//!   negative", "not only") match first and trigger nothing. Where phrases overlap, the longest
//!   one starting at a token wins.
//! - Scope: the same sentence, no terminating word in between ("but", "however", "which",
//!   "presented", ";"...), and at most 8 tokens forward or 4 backward, 20 where the gap is a list
//!   (commas, "or", "nor"): "denied fever, chills, night sweats or hemoptysis". A trigger that
//!   begins the entity's own span ("no regular medication") applies to it. The nearest trigger
//!   wins.
//! - Only the event types MACCROBAT asserts are asserted ([`ASSERTED_GROUPS`]); entities of
//!   other known types (Age, Date, Biological_structure...) are always present, and entities
//!   with no type are asserted. Diagnostic procedures and lab values are negated only by a
//!   trigger right before or inside them: "chest radiograph was negative" is a test that was
//!   done, with a negative result.
//! - A learned stage (module `learned`) makes the final call: a logistic regression over the rules'
//!   verdict and the features of module `features` (the triggers within reach, the words around and
//!   inside the entity, its type and place), trained by `train/assertion.py`.
//!   `BIOMED_NER_ASSERTION=rules` asks for the rules alone.
//!
//! What it misses: negation by a word that is not a trigger ("the organism was catalase-
//! negative" is not about the organism), scope across sentences, double negation, and
//! uncertainty expressed by hedging over a whole paragraph.

use serde::{Deserialize, Serialize};

/// The assertion status of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assertion {
    Present,
    Absent,
    Possible,
}

impl Assertion {
    pub const NAMES: [&'static str; 3] = ["present", "absent", "possible"];

    pub fn as_str(self) -> &'static str {
        match self {
            Assertion::Present => "present",
            Assertion::Absent => "absent",
            Assertion::Possible => "possible",
        }
    }
}

/// The entity types whose mentions MACCROBAT marks as negated or uncertain.
pub const ASSERTED_GROUPS: [&str; 7] = [
    "Sign_symptom",
    "Disease_disorder",
    "Medication",
    "Therapeutic_procedure",
    "Diagnostic_procedure",
    "Activity",
    "Clinical_event",
];

/// Types negated only by a trigger right before or inside the span.
pub(crate) const ADJACENT_ONLY: [&str; 2] = ["Diagnostic_procedure", "Lab_value"];

mod features;
mod learned;
mod lists;
mod text;

pub use learned::Learned;

/// The assertion of each entity `(start, end, entity_group)` of `text` (code-point offsets).
/// Spans outside the text are clamped to it; they may overlap and come in any order.
pub fn assert_spans(text: &str, spans: &[(usize, usize, Option<&str>)]) -> Vec<Assertion> {
    let model = learned::learned();
    let mut out = vec![Assertion::Present; spans.len()];
    features::each(text, spans, |i, rule, features| {
        out[i] = match (features, model) {
            (Some(f), Some(m)) => m.classify(&f),
            _ => rule,
        }
    });
    out
}

/// What the rules say of one entity, and the features the learned stage reads (None for
/// entity types that are not asserted).
pub struct Analysis {
    pub rule: Assertion,
    pub features: Option<Vec<String>>,
}

/// The rules' verdict and the learned stage's features for each entity.
pub fn analyse(text: &str, spans: &[(usize, usize, Option<&str>)]) -> Vec<Analysis> {
    let mut out: Vec<Analysis> = spans.iter().map(|_| Analysis { rule: Assertion::Present, features: None }).collect();
    features::each(text, spans, |i, rule, features| out[i] = Analysis { rule, features });
    out
}

/// The pipeline's JSON objects of `entities` found in `text`, each with its `"assertion"`.
pub fn entities_json(text: &str, entities: &[crate::Entity]) -> Vec<serde_json::Value> {
    let spans: Vec<(usize, usize, Option<&str>)> = entities.iter().map(|e| (e.start, e.end, Some(e.group.as_str()))).collect();
    entities
        .iter()
        .zip(assert_spans(text, &spans))
        .map(|(e, a)| {
            let mut v = e.to_json();
            v.as_object_mut().expect("an entity is an object").insert("assertion".into(), a.as_str().into());
            v
        })
        .collect()
}

/// Adds `"assertion"` to each entity object of `entities` (a JSON array of objects with
/// integer `start` and `end`, code points into `text`, and optionally `entity_group` or
/// `entity`). Entities may come in any order and overlap. What is wrong with the input is said,
/// with the entity's position: not an array, an element that is not an object, a missing or
/// non-integer offset, `start` after `end`, or an offset past the text's end.
pub fn assert_json(text: &str, entities: &serde_json::Value) -> std::result::Result<serde_json::Value, String> {
    let list = entities.as_array().ok_or_else(|| format!("entities must be a JSON array, not {}", kind(entities)))?;
    let length = text.chars().count();
    let mut spans = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        let o = e.as_object().ok_or_else(|| format!("entity {i} must be an object, not {}", kind(e)))?;
        let offset = |key: &str| -> std::result::Result<usize, String> {
            let v = o.get(key).ok_or_else(|| format!("entity {i} has no \"{key}\""))?;
            let n = v.as_u64().ok_or_else(|| format!("entity {i}: \"{key}\" must be a non-negative integer, not {v}"))?;
            usize::try_from(n).ok().filter(|&n| n <= length).ok_or_else(|| {
                format!("entity {i}: \"{key}\" {n} is past the end of the text ({length} characters)")
            })
        };
        let (start, end) = (offset("start")?, offset("end")?);
        if start > end {
            return Err(format!("entity {i}: \"start\" {start} is after \"end\" {end}"));
        }
        let group = match o.get("entity_group").or_else(|| o.get("entity")) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(g)) => Some(g.as_str()),
            Some(v) => return Err(format!("entity {i}: \"entity_group\" must be a string, not {}", kind(v))),
        };
        spans.push((start, end, group));
    }
    let asserted = assert_spans(text, &spans);
    Ok(serde_json::Value::Array(
        list.iter()
            .zip(asserted)
            .map(|(e, a)| {
                let mut o = e.as_object().expect("checked").clone();
                o.insert("assertion".into(), a.as_str().into());
                serde_json::Value::Object(o)
            })
            .collect(),
    ))
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str, entity: &str, group: Option<&str>) -> Assertion {
        let at = text.find(entity).unwrap();
        let s = text[..at].chars().count();
        let e = s + entity.chars().count();
        assert_spans(text, &[(s, e, group)])[0]
    }

    #[test]
    fn negation_uncertainty_and_their_scope() {
        use Assertion::*;
        let g = Some("Sign_symptom");
        assert_eq!(one("No evidence of pneumonia.", "pneumonia", Some("Disease_disorder")), Absent);
        assert_eq!(one("She denied fever, chills, night sweats or hemoptysis.", "hemoptysis", g), Absent);
        assert_eq!(one("Pneumonia was ruled out.", "Pneumonia", Some("Disease_disorder")), Absent);
        assert_eq!(one("Findings suspicious for lymphoma.", "lymphoma", Some("Disease_disorder")), Possible);
        assert_eq!(one("Metastasis could not be excluded.", "Metastasis", Some("Disease_disorder")), Possible);
        assert_eq!(one("No fever, but severe cough.", "cough", g), Present);
        assert_eq!(one("No fever. Cough for two days.", "Cough", g), Present);
        assert_eq!(one("No change in the rash.", "rash", g), Present);
        assert_eq!(one("He was on no regular medication.", "no regular medication", Some("Medication")), Absent);
        // A test with a negative result was done; only the types MACCROBAT asserts are asserted.
        assert_eq!(one("Chest radiograph was negative.", "radiograph", Some("Diagnostic_procedure")), Present);
        assert_eq!(one("No 45-year-old.", "45-year-old", Some("Age")), Present);
        assert_eq!(one("No rash.", "rash", None), Absent);
        // Offsets are code points: text before the entity in other scripts does not move it.
        assert_eq!(one("患者 😷: no rash.", "rash", g), Absent);
    }

    #[test]
    fn entities_from_anywhere_get_the_key_and_bad_ones_a_reason() {
        use serde_json::json;
        let text = "No fever. Cough.";
        let out = assert_json(text, &json!([{"start": 10, "end": 15, "entity_group": "Sign_symptom", "x": 1},
            {"start": 3, "end": 8}])).unwrap();
        assert_eq!(out, json!([{"start": 10, "end": 15, "entity_group": "Sign_symptom", "x": 1, "assertion": "present"},
            {"start": 3, "end": 8, "assertion": "absent"}]));
        for (bad, says) in [
            (json!({"start": 1}), "must be a JSON array"),
            (json!([1]), "entity 0 must be an object"),
            (json!([{"end": 2}]), "has no \"start\""),
            (json!([{"start": 1.5, "end": 2}]), "non-negative integer"),
            (json!([{"start": -1, "end": 2}]), "non-negative integer"),
            (json!([{"start": 0, "end": 17}]), "past the end of the text (16 characters)"),
            (json!([{"start": 5, "end": 2}]), "is after"),
            (json!([{"start": 0, "end": 2, "entity_group": 7}]), "must be a string"),
        ] {
            let e = assert_json(text, &bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert_eq!(assert_json("", &json!([])).unwrap(), json!([]));
    }

    #[test]
    fn spans_outside_the_text_are_clamped_not_a_panic() {
        let out = assert_spans("no fever", &[(3, 8, None), (7, 100, None), (100, 200, None), (5, 2, None)]);
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], Assertion::Absent);
        assert!(assert_spans("", &[(0, 0, None)]).len() == 1);
    }
}
