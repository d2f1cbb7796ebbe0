//! From per-token label scores to entities, exactly as transformers 4.57's
//! `TokenClassificationPipeline` (`gather_pre_entities`, `aggregate`, `aggregate_words`,
//! `group_entities`), then the two documented departures: `start` skips leading whitespace and
//! `word` is the input slice `text[start..end]` (code points); whitespace-only entities are
//! dropped.

use serde::Serialize;

use crate::error::{Error, Result};

/// `aggregation_strategy` of the Hugging Face pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregation {
    None,
    #[default]
    Simple,
    First,
    Average,
    Max,
}

impl Aggregation {
    pub const NAMES: [&'static str; 5] = ["none", "simple", "first", "average", "max"];

    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::None => "none",
            Aggregation::Simple => "simple",
            Aggregation::First => "first",
            Aggregation::Average => "average",
            Aggregation::Max => "max",
        }
    }
}

impl std::str::FromStr for Aggregation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "none" => Aggregation::None,
            "simple" => Aggregation::Simple,
            "first" => Aggregation::First,
            "average" => Aggregation::Average,
            "max" => Aggregation::Max,
            _ => {
                return Err(Error::InvalidOption(format!(
                    "aggregation \"{s}\" (expected one of {})",
                    Aggregation::NAMES.join(", ")
                )))
            }
        })
    }
}

/// One entity. With aggregation `none` it is one token and serialises as the pipeline does,
/// with `entity` and `index` instead of `entity_group`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub group: String,
    pub score: f32,
    pub word: String,
    /// Code-point offset of the first character.
    pub start: usize,
    /// Code-point offset one past the last character.
    pub end: usize,
    /// The token's position in the encoded sequence (aggregation `none` only).
    pub index: Option<usize>,
}

impl Entity {
    /// The pipeline's JSON object for this entity.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        let key = if self.index.is_some() { "entity" } else { "entity_group" };
        m.insert(key.into(), self.group.clone().into());
        m.insert("score".into(), serde_json::Value::from(self.score as f64));
        if let Some(i) = self.index {
            m.insert("index".into(), i.into());
        }
        m.insert("word".into(), self.word.clone().into());
        m.insert("start".into(), self.start.into());
        m.insert("end".into(), self.end.into());
        serde_json::Value::Object(m)
    }
}

impl Serialize for Entity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// A non-special token with its scores (softmax probabilities over the labels).
#[derive(Debug, Clone)]
pub struct TokenScores<'a> {
    /// Position in the encoded sequence (special tokens counted), the pipeline's `index`.
    pub index: usize,
    pub start: usize,
    pub end: usize,
    pub is_subword: bool,
    pub scores: &'a [f32],
}

/// Softmax in f32, as the pipeline computes it with numpy.
pub fn softmax_in_place(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in logits.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in logits.iter_mut() {
        *v /= sum;
    }
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// A token or word with its chosen label, before grouping.
struct Tagged {
    label: usize,
    score: f32,
    start: usize,
    end: usize,
    index: usize,
}

fn tag<'l>(labels: &'l [String], label: usize) -> (bool, &'l str) {
    let name = labels[label].as_str();
    if let Some(t) = name.strip_prefix("B-") {
        (true, t)
    } else if let Some(t) = name.strip_prefix("I-") {
        (false, t)
    } else {
        (false, name)
    }
}

fn aggregate_word(word: &[&TokenScores], strategy: Aggregation) -> Tagged {
    let (label, score) = match strategy {
        Aggregation::First => {
            let s = word[0].scores;
            let i = argmax(s);
            (i, s[i])
        }
        Aggregation::Max => {
            // `max(entities, key=lambda e: e["scores"].max())`: the first token with the
            // highest score wins ties.
            let mut best = word[0];
            let top = |t: &TokenScores| t.scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for t in &word[1..] {
                if top(t) > top(best) {
                    best = t;
                }
            }
            let i = argmax(best.scores);
            (i, best.scores[i])
        }
        Aggregation::Average => {
            let n = word[0].scores.len();
            let avg: Vec<f32> = (0..n)
                .map(|j| (word.iter().map(|t| t.scores[j] as f64).sum::<f64>() / word.len() as f64) as f32)
                .collect();
            let i = argmax(&avg);
            (i, avg[i])
        }
        Aggregation::None | Aggregation::Simple => unreachable!("words are not aggregated"),
    };
    Tagged { label, score, start: word[0].start, end: word[word.len() - 1].end, index: word[0].index }
}

/// Entities of one text from its non-special tokens, in order.
pub fn aggregate(
    text_chars: &[char],
    tokens: &[TokenScores],
    labels: &[String],
    strategy: Aggregation,
    ignore_labels: &[String],
) -> Vec<Entity> {
    let tagged: Vec<Tagged> = match strategy {
        Aggregation::None | Aggregation::Simple => tokens
            .iter()
            .map(|t| {
                let label = argmax(t.scores);
                Tagged { label, score: t.scores[label], start: t.start, end: t.end, index: t.index }
            })
            .collect(),
        _ => {
            let mut words = Vec::new();
            let mut group: Vec<&TokenScores> = Vec::new();
            for t in tokens {
                if !group.is_empty() && !t.is_subword {
                    words.push(aggregate_word(&group, strategy));
                    group.clear();
                }
                group.push(t);
            }
            if !group.is_empty() {
                words.push(aggregate_word(&group, strategy));
            }
            words
        }
    };
    let ignored = |name: &str| ignore_labels.iter().any(|l| l == name);
    let mut out = Vec::new();
    let mut emit = |group: String, score: f32, start: usize, end: usize, index: Option<usize>| {
        if ignored(&group) {
            return;
        }
        let start = (start..end).find(|&i| !text_chars[i].is_whitespace()).unwrap_or(end);
        if start < end {
            let word: String = text_chars[start..end].iter().collect();
            out.push(Entity { group, score, word, start, end, index });
        }
    };
    if strategy == Aggregation::None {
        for t in &tagged {
            emit(labels[t.label].clone(), t.score, t.start, t.end, Some(t.index));
        }
        return out;
    }
    // group_entities: a token joins the open group when its tag matches and it is not B-.
    let mut i = 0;
    while i < tagged.len() {
        let mut j = i + 1;
        while j < tagged.len() {
            let (b, t) = tag(labels, tagged[j].label);
            let (_, last) = tag(labels, tagged[j - 1].label);
            if t != last || b {
                break;
            }
            j += 1;
        }
        let members = &tagged[i..j];
        let name = &labels[members[0].label];
        let group = name.split_once('-').map_or(name.as_str(), |(_, rest)| rest).to_string();
        let score = (members.iter().map(|m| m.score as f64).sum::<f64>() / members.len() as f64) as f32;
        emit(group, score, members[0].start, members[members.len() - 1].end, None);
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["O", "B-Dis", "I-Dis", "B-Med", "I-Med"].iter().map(|s| s.to_string()).collect()
    }

    fn onehot(i: usize, p: f32) -> Vec<f32> {
        let mut v = vec![(1.0 - p) / 4.0; 5];
        v[i] = p;
        v
    }

    #[test]
    fn simple_groups_follow_the_pipeline_rules() {
        let text: Vec<char> = "SCC of cervix aspirin".chars().collect();
        let s = [onehot(1, 0.9), onehot(2, 0.8), onehot(2, 0.7), onehot(3, 0.6)];
        let toks: Vec<TokenScores> = [(0, 3), (3, 6), (6, 13), (13, 21)]
            .iter()
            .zip(&s)
            .enumerate()
            .map(|(i, (&(a, b), sc))| TokenScores { index: i + 1, start: a, end: b, is_subword: false, scores: sc })
            .collect();
        let e = aggregate(&text, &toks, &labels(), Aggregation::Simple, &["O".into()]);
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].group.as_str(), e[0].start, e[0].end, e[0].word.as_str()), ("Dis", 0, 13, "SCC of cervix"));
        assert!((e[0].score - 0.8).abs() < 1e-6);
        // Leading space of the SentencePiece token is trimmed from start and word.
        assert_eq!((e[1].start, e[1].word.as_str()), (14, "aspirin"));
    }

    #[test]
    fn b_tag_opens_a_new_group_and_o_tokens_are_dropped() {
        let text: Vec<char> = "ab cd ef".chars().collect();
        let s = [onehot(1, 0.9), onehot(1, 0.9), onehot(0, 0.9)];
        let toks: Vec<TokenScores> = [(0, 2), (2, 5), (5, 8)]
            .iter()
            .zip(&s)
            .enumerate()
            .map(|(i, (&(a, b), sc))| TokenScores { index: i, start: a, end: b, is_subword: false, scores: sc })
            .collect();
        let e = aggregate(&text, &toks, &labels(), Aggregation::Simple, &["O".into()]);
        assert_eq!(e.iter().map(|e| (e.start, e.end)).collect::<Vec<_>>(), vec![(0, 2), (3, 5)]);
    }

    #[test]
    fn parse_strategies() {
        for n in Aggregation::NAMES {
            assert_eq!(n.parse::<Aggregation>().unwrap().as_str(), n);
        }
        assert!("longest".parse::<Aggregation>().is_err());
    }
}
