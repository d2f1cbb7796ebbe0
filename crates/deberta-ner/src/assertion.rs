//! Clinical assertion: is an entity's finding present, absent (negated) or only possible
//! (uncertain, suspected, to be ruled out)? A rule engine in the manner of NegEx and ConText,
//! with trigger lists of its own, that works on any entities' character spans, from any model.
//!
//! - The text is lower-cased and cut into tokens (runs of letters and digits, each other
//!   non-space character alone) and sentences (a line break; `.`, `!` or `?` followed by space
//!   and a character that is not lower-case). All positions are code points, like entity
//!   offsets.
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
//!
//! What it misses: negation by a word that is not a trigger ("the organism was catalase-
//! negative" is not about the organism), scope across sentences, double negation, and
//! uncertainty expressed by hedging over a whole paragraph.

use std::sync::OnceLock;

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
const ADJACENT_ONLY: [&str; 2] = ["Diagnostic_procedure", "Lab_value"];

const FORWARD_WINDOW: usize = 8;
const BACKWARD_WINDOW: usize = 4;
const LIST_WINDOW: usize = 20;

const ABSENT_FORWARD: &str = "no|not|without|denied|denies|deny|denying|negative for|free of|absence of|absent|\
no evidence of|no signs of|no sign of|no history of|never|neither|nor|none|lack of|lacked|lacking|did not|does not|\
do not|was not|were not|had not|has not|have not|is not|are not|cannot|could not|failed to|refused|declined|quit|\
stopped|no further|ruled out|rules out|excluded|unremarkable for|exclusion of|not have|not show|no longer|free from|\
absent of|nil|nothing|cessation of|withdrawal of|resolution of|removal of|weaned from|weaned off|discontinued|\
discontinuation of|ruling out|off|unable to|instead of|rather than|withholding|withheld|recovered from|relief of|\
not detected|not detect|denied any|without any";
const ABSENT_BACKWARD: &str = "was negative|were negative|negative|was excluded|were excluded|excluded|\
was ruled out|were ruled out|ruled out|were absent|was absent|absent|not seen|not detected|not found|not observed|\
not identified|not present|were not|was not|unremarkable|not noted|not evident|not revealed|did not|free|\
disappeared|resolved|subsided|vanished|not performed|not undertaken|unavailable|not considered|not done|\
not obtained|discontinued|removed|terminated|withdrawn|stopped|ceased|not administered|not given|not required|\
not needed|deferred|cancelled|canceled|abandoned|relieved|cleared|cured|absorbed|suspended|weaned off|refused|\
was changed|were changed|not reveal|were not observed|resolved completely";
const POSSIBLE_FORWARD: &str = "possible|possibly|probable|probably|suspected|suspect|suspicion of|\
suspicious for|suspicious of|suggestive of|suggesting|suggested|may|might|likely|presumed|presumptive|presumably|\
questionable|concern for|concerning for|differential diagnosis|differential|rule out|r / o|to exclude|to rule out|\
uncertain|unclear|equivocal|possibility of|potential|thought to be|considered|consider|versus|vs|whether|query|\
impression of|compatible with|indicative of|doubtful|cannot exclude|could not exclude|can not exclude|not exclude|\
presumptive diagnosis of|evaluate for|evaluation for|investigate|investigation for|screening for|to evaluate|\
assess for|risk of|risk for|prophylactic|prophylaxis";
const POSSIBLE_BACKWARD: &str = "was suspected|were suspected|suspected|was considered|was possible|\
could not be excluded|cannot be excluded|can not be excluded|could not be ruled out|cannot be ruled out|\
not excluded|not ruled out|unlikely|was likely|likely|was questionable|questionable|possible|probable|\
could not be ruled|was not excluded|?";
const PSEUDO: &str = "no increase|no change|no significant change|not only|no further change|not necessarily|\
without difficulty|not certain whether|not cause|no interval change|gram negative|gram - negative|not extend|\
not drain|without any change|not improve|did not improve|no improvement|not respond|did not respond|\
failed to respond|not tolerate|no response|not resolve|did not resolve|not significant|not well|not until|\
no sooner|not responsive|despite|whether or not|not adequately|not shown|data not shown";
const TERMINATION: &str = "but|however|although|though|except|aside|apart|which|who|yet|whereas|nevertheless|\
still|while|presented|presents|presenting|revealed|showed|shows|demonstrated|confirmed|developed|complained|\
complaining|reported|underwent|admitted|started|began|diagnosed|treated|given|received|;|:|because|since|due|\
secondary|after|later|then|therefore|thus|so|until";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Absent,
    Possible,
    Pseudo,
    Termination,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    Backward,
    Neither,
}

struct Rule {
    phrase: Vec<String>,
    kind: Kind,
    direction: Direction,
}

/// The rules, longest phrase first.
fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let lists = [
            (ABSENT_FORWARD, Kind::Absent, Direction::Forward),
            (ABSENT_BACKWARD, Kind::Absent, Direction::Backward),
            (POSSIBLE_FORWARD, Kind::Possible, Direction::Forward),
            (POSSIBLE_BACKWARD, Kind::Possible, Direction::Backward),
            (PSEUDO, Kind::Pseudo, Direction::Neither),
            (TERMINATION, Kind::Termination, Direction::Neither),
        ];
        let mut rules: Vec<Rule> = lists
            .iter()
            .flat_map(|&(list, kind, direction)| {
                list.split('|').map(move |p| {
                    let chars: Vec<char> = p.chars().collect();
                    Rule { phrase: tokens(&chars).into_iter().map(|t| t.text).collect(), kind, direction }
                })
            })
            .filter(|r| !r.phrase.is_empty())
            .collect();
        rules.sort_by_key(|r| std::cmp::Reverse(r.phrase.len()));
        rules
    })
}

struct Token {
    start: usize,
    text: String,
}

/// Tokens of lower-cased `chars`: runs of letters and digits (with an apostrophe and letters
/// after them), and every other non-space character alone.
fn tokens(chars: &[char]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_alphanumeric() {
            while i < chars.len() && chars[i].is_alphanumeric() {
                i += 1;
            }
            if i + 1 < chars.len() && matches!(chars[i], '\'' | '\u{2019}') && chars[i + 1].is_alphabetic() {
                i += 1;
                while i < chars.len() && chars[i].is_alphabetic() {
                    i += 1;
                }
            }
        } else {
            i += 1;
        }
        out.push(Token { start, text: chars[start..i].iter().flat_map(|c| c.to_lowercase()).collect() });
    }
    out
}

/// Where each sentence starts, in code points.
fn sentence_starts(chars: &[char]) -> Vec<usize> {
    let mut starts = vec![0];
    for (i, &c) in chars.iter().enumerate() {
        let end = match c {
            '\n' => true,
            '.' | '!' | '?' => {
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                j == chars.len() || (j > i + 1 && !chars[j].is_lowercase())
            }
            _ => false,
        };
        if end {
            starts.push(i + 1);
        }
    }
    starts
}

struct Match {
    first: usize,
    end: usize,
    kind: Kind,
    direction: Direction,
}

fn matches(words: &[&str]) -> Vec<Match> {
    let rules = rules();
    let mut out = Vec::new();
    let mut blocked_until = 0;
    let mut i = 0;
    while i < words.len() {
        let rest = &words[i..];
        let hit = rules.iter().find(|r| r.phrase.len() <= rest.len() && r.phrase.iter().zip(rest).all(|(p, w)| p == w));
        if let Some(hit) = hit {
            let n = hit.phrase.len();
            let same: Vec<&Rule> = rules.iter().filter(|r| r.phrase == hit.phrase).collect();
            if same.iter().any(|r| r.kind == Kind::Pseudo) {
                blocked_until = i + n;
                i += n;
                continue;
            }
            if i >= blocked_until {
                out.extend(same.iter().map(|r| Match { first: i, end: i + n, kind: r.kind, direction: r.direction }));
            }
        }
        i += 1;
    }
    out
}

/// The assertion of each entity `(start, end, entity_group)` of `text` (code-point offsets).
/// Spans outside the text are clamped to it.
pub fn assert_spans(text: &str, spans: &[(usize, usize, Option<&str>)]) -> Vec<Assertion> {
    let model = learned();
    analyse(text, spans)
        .into_iter()
        .map(|a| match (&a.features, model) {
            (Some(f), Some(m)) => m.classify(f),
            _ => a.rule,
        })
        .collect()
}

/// What the rules say of one entity, and the features the learned stage reads (None for
/// entity types that are not asserted).
pub struct Analysis {
    pub rule: Assertion,
    pub features: Option<Vec<String>>,
}

fn bucket(d: usize) -> &'static str {
    match d {
        0 => "0",
        1 => "1",
        2 => "2",
        3..=5 => "3-5",
        6..=10 => "6-10",
        _ => "11+",
    }
}

/// The rules' verdict and the learned stage's features for each entity.
pub fn analyse(text: &str, spans: &[(usize, usize, Option<&str>)]) -> Vec<Analysis> {
    if spans.is_empty() {
        return Vec::new();
    }
    let chars: Vec<char> = text.chars().collect();
    let toks = tokens(&chars);
    let words: Vec<&str> = toks.iter().map(|t| t.text.as_str()).collect();
    let starts: Vec<usize> = toks.iter().map(|t| t.start).collect();
    let sentences = sentence_starts(&chars);
    let sentence_of = |ch: usize| sentences.partition_point(|&s| s <= ch) - 1;
    let found = matches(&words);
    // Terminations counted up to each token, so that "is there one between" costs one
    // subtraction: the work per entity stays bounded whatever the text and the entities.
    let mut terminations_before = vec![0usize; words.len() + 1];
    let mut termination_at = vec![false; words.len() + 1];
    for m in found.iter().filter(|m| m.kind == Kind::Termination) {
        termination_at[m.first] = true;
    }
    for t in 0..words.len() {
        terminations_before[t + 1] = terminations_before[t] + usize::from(termination_at[t]);
    }
    let is_termination_at = |t: usize| termination_at[t.min(words.len())];
    let terminated = |from: usize, to: usize| terminations_before[to.min(words.len())] > terminations_before[from.min(to).min(words.len())];
    let listy = |from: usize, to: usize, and: bool| {
        words[from..to].iter().any(|w| matches!(*w, "," | "or" | "nor") || (and && *w == "and"))
    };
    let longest = rules().first().map_or(1, |r| r.phrase.len());
    let first_at_or_after = |t: usize| found.partition_point(|m| m.first < t);
    spans
        .iter()
        .map(|&(s, e, group)| {
            // A token's label (aggregation none) names its type after B- or I-.
            let group = group.map(|g| g.strip_prefix("B-").or_else(|| g.strip_prefix("I-")).unwrap_or(g));
            if group.is_some_and(|g| !ASSERTED_GROUPS.contains(&g)) {
                return Analysis { rule: Assertion::Present, features: None };
            }
            let adjacent_only = group.is_some_and(|g| ADJACENT_ONLY.contains(&g));
            let (s, e) = (s.min(chars.len()), e.min(chars.len()));
            let sentence = sentence_of(s);
            let a = starts.partition_point(|&x| x < s);
            let b = starts.partition_point(|&x| x < e).max(a);
            let in_sentence = |t: usize| t < toks.len() && sentence_of(toks[t].start) == sentence;
            let mut features = vec![format!("type={}", group.unwrap_or("-"))];
            let mut best: Option<(usize, Kind)> = None;
            // Only triggers that can reach the entity: before it within the list window, at
            // most that far into its span, and after it within the window.
            let near = (first_at_or_after(a.saturating_sub(LIST_WINDOW + longest))..first_at_or_after(a + LIST_WINDOW + 1).min(first_at_or_after(b)))
                .chain(first_at_or_after(b)..first_at_or_after(b + LIST_WINDOW + 1));
            for m in near.map(|i| &found[i]) {
                if !matches!(m.kind, Kind::Absent | Kind::Possible) || !in_sentence(m.first) {
                    continue;
                }
                let kind = if m.kind == Kind::Absent { "absent" } else { "possible" };
                let dir = if m.direction == Direction::Forward { "f" } else { "b" };
                let phrase = m_phrase(&words, m);
                let (side, gap) = if m.end <= a {
                    ("before", a - m.end)
                } else if m.first >= b {
                    ("after", m.first - b)
                } else {
                    ("inside", 0)
                };
                if gap <= LIST_WINDOW {
                    let (from, to) = if side == "before" { (m.end, a) } else { (b, m.first.max(b)) };
                    let cut = if side != "inside" && terminated(from, to) { ":cut" } else { "" };
                    features.push(format!("trig={kind}:{dir}:{phrase}:{side}:{}{cut}", bucket(gap)));
                    features.push(format!("kind={kind}:{dir}:{side}:{}{cut}", bucket(gap)));
                }
                if m.first == a && a < b && m.direction == Direction::Forward {
                    // The entity's own span begins with the trigger.
                    best = Some((0, m.kind));
                    continue;
                }
                if best.is_some_and(|(d, _)| d == 0) {
                    continue;
                }
                if adjacent_only && (m.direction == Direction::Backward || m.end < a) {
                    continue;
                }
                if is_termination_at(a) {
                    continue;
                }
                let distance = match m.direction {
                    Direction::Forward if m.end <= a => {
                        let window = if listy(m.end, a, false) { LIST_WINDOW } else { FORWARD_WINDOW };
                        if a - m.end > window || terminated(m.end, a) {
                            continue;
                        }
                        a - m.end
                    }
                    Direction::Backward if m.first >= b => {
                        let window = if listy(b, m.first, true) { LIST_WINDOW } else { BACKWARD_WINDOW };
                        if m.first - b > window || terminated(b, m.first) {
                            continue;
                        }
                        m.first - b
                    }
                    _ => continue,
                };
                if best.is_none_or(|(d, _)| distance + 1 < d) {
                    best = Some((distance + 1, m.kind));
                }
            }
            let rule = match best {
                Some((_, Kind::Absent)) => Assertion::Absent,
                Some((_, Kind::Possible)) => Assertion::Possible,
                _ => Assertion::Present,
            };
            features.push(format!("rule={}", rule.as_str()));
            for k in 1..=3 {
                if a >= k && in_sentence(a - k) {
                    features.push(format!("l{k}={}", words[a - k]));
                }
                if b + k - 1 < toks.len() && in_sentence(b + k - 1) {
                    features.push(format!("r{k}={}", words[b + k - 1]));
                }
            }
            for t in a.saturating_sub(8)..a.saturating_sub(3) {
                if in_sentence(t) {
                    features.push(format!("lbag={}", words[t]));
                }
            }
            for t in (b + 3)..(b + 6).min(toks.len()) {
                if in_sentence(t) {
                    features.push(format!("rbag={}", words[t]));
                }
            }
            if a < b {
                features.push(format!("first={}", words[a]));
                features.push(format!("last={}", words[b - 1]));
            }
            Analysis { rule, features: Some(features) }
        })
        .collect()
}

fn m_phrase(words: &[&str], m: &Match) -> String {
    words[m.first..m.end].join(" ")
}

/// The learned stage: a multinomial logistic regression over [`analyse`]'s features, trained
/// on MACCROBAT's training split by `train/assertion.py` (its weights in
/// `assertion_model.json`).
pub struct Learned {
    bias: [f32; 3],
    weights: std::collections::HashMap<String, [f32; 3]>,
}

#[derive(Deserialize)]
struct LearnedFile {
    classes: Vec<String>,
    bias: Vec<f32>,
    weights: std::collections::HashMap<String, Vec<f32>>,
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
fn learned() -> Option<&'static Learned> {
    static MODEL: OnceLock<Option<Learned>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            if std::env::var("BIOMED_NER_ASSERTION").is_ok_and(|v| v == "rules") {
                return None;
            }
            let json = include_str!("assertion_model.json");
            (!json.trim().is_empty()).then(|| Learned::from_json(json).expect("the bundled assertion model reads"))
        })
        .as_ref()
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
