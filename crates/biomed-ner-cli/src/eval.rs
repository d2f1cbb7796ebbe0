//! `biomed-ner eval`: strict and relaxed entity-level precision, recall and F1 of a model on
//! a brat corpus (`.txt` + `.ann` pairs).
//!
//! Gold entities are the `T` lines; a discontinuous entity counts as the extent from its first
//! fragment's start to its last fragment's end. Spans on both sides are trimmed of surrounding
//! whitespace. Strict: same type and the same span. Relaxed: same type and overlapping spans
//! (a prediction is correct when it overlaps some gold entity of its type, a gold entity is
//! found when some prediction of its type overlaps it).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use biomed_ner_engine::{Options, Pipeline};
use serde_json::json;

use crate::args::EvalArgs;

type Span = (String, usize, usize);

pub fn trim(chars: &[char], mut start: usize, mut end: usize) -> Option<(usize, usize)> {
    end = end.min(chars.len());
    while start < end && chars[start].is_whitespace() {
        start += 1;
    }
    while end > start && chars[end - 1].is_whitespace() {
        end -= 1;
    }
    (start < end).then_some((start, end))
}

/// Gold entities of one `.ann` file (types and code-point spans).
pub fn read_ann(ann: &str, chars: &[char]) -> Result<BTreeSet<Span>, String> {
    let mut out = BTreeSet::new();
    for (i, line) in ann.lines().enumerate() {
        if !line.starts_with('T') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let spec = fields.get(1).ok_or_else(|| format!("line {}: no type and span field", i + 1))?;
        let (ty, ranges) = spec.split_once(' ').ok_or_else(|| format!("line {}: bad span \"{spec}\"", i + 1))?;
        let mut bounds = Vec::new();
        for frag in ranges.split(';') {
            let (a, b) = frag
                .trim()
                .split_once(' ')
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
                .ok_or_else(|| format!("line {}: bad fragment \"{frag}\"", i + 1))?;
            bounds.push((a, b));
        }
        let start = bounds.iter().map(|b| b.0).min().unwrap();
        let end = bounds.iter().map(|b| b.1).max().unwrap();
        if let Some((s, e)) = trim(chars, start, end) {
            out.insert((ty.to_string(), s, e));
        }
    }
    Ok(out)
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: usize,
    pred: usize,
    gold: usize,
}

/// Precision, recall and F1 from the correct predictions, the predictions, the gold entities
/// found and the gold entities.
fn prf(correct_pred: usize, pred: usize, found_gold: usize, gold: usize) -> (f64, f64, f64) {
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (p, r) = (ratio(correct_pred, pred), ratio(found_gold, gold));
    let f = if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
    (round4(p), round4(r), round4(f))
}

impl Counts {
    fn prf(&self) -> serde_json::Value {
        let (p, r, f) = prf(self.tp, self.pred, self.tp, self.gold);
        json!({"precision": p, "recall": r, "f1": f, "tp": self.tp, "pred": self.pred, "gold": self.gold})
    }
}

/// Relaxed matching: precision over predictions that overlap a gold entity of their type,
/// recall over gold entities that some prediction of their type overlaps.
#[derive(Default)]
struct Relaxed {
    correct_pred: usize,
    pred: usize,
    found_gold: usize,
    gold: usize,
}

impl Relaxed {
    fn prf(&self) -> serde_json::Value {
        let (p, r, f) = prf(self.correct_pred, self.pred, self.found_gold, self.gold);
        json!({"precision": p, "recall": r, "f1": f, "pred": self.pred, "gold": self.gold})
    }
}

fn round4(x: f64) -> f64 {
    (x * 10000.0).round() / 10000.0
}

fn overlaps(a: &Span, b: &Span) -> bool {
    a.0 == b.0 && a.1 < b.2 && b.1 < a.2
}

pub fn doc_ids(args: &EvalArgs) -> Result<Vec<String>, String> {
    if let (Some(file), Some(split)) = (&args.split_file, &args.split) {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let ids: Vec<String> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once('\t'))
            .filter(|(_, s)| s.trim() == split)
            .map(|(id, _)| id.to_string())
            .collect();
        if ids.is_empty() {
            return Err(format!("no document of split \"{split}\" in {}", file.display()));
        }
        return Ok(ids);
    }
    let mut ids: Vec<String> = std::fs::read_dir(&args.brat)
        .map_err(|e| format!("{}: {e}", args.brat.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".ann").map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

pub fn run(p: &Pipeline, opts: &Options, args: &EvalArgs, progress: crate::progress::Mode) -> Result<(), String> {
    let ids = doc_ids(args)?;
    let bar = crate::progress::notes(progress, Some(ids.len() as u64));
    let read = |id: &str, ext: &str| -> Result<String, String> {
        let path = Path::new(&args.brat).join(format!("{id}.{ext}"));
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let mut strict: BTreeMap<String, Counts> = BTreeMap::new();
    let (mut micro, mut relaxed) = (Counts::default(), Relaxed::default());
    for id in &ids {
        let text = read(id, "txt")?;
        let chars: Vec<char> = text.chars().collect();
        let gold = read_ann(&read(id, "ann")?, &chars).map_err(|e| format!("{id}.ann: {e}"))?;
        let entities = p.annotate(&[&text], opts, &mut || Ok(())).map_err(|e| e.to_string())?.remove(0);
        let pred: HashSet<Span> = entities
            .iter()
            .filter_map(|e| trim(&chars, e.start, e.end).map(|(s, t)| (e.group.clone(), s, t)))
            .collect();
        for g in &gold {
            let c = strict.entry(g.0.clone()).or_default();
            c.gold += 1;
            if pred.contains(g) {
                c.tp += 1;
            }
        }
        for q in &pred {
            strict.entry(q.0.clone()).or_default().pred += 1;
        }
        relaxed.pred += pred.len();
        relaxed.gold += gold.len();
        relaxed.correct_pred += pred.iter().filter(|q| gold.iter().any(|g| overlaps(g, q))).count();
        relaxed.found_gold += gold.iter().filter(|g| pred.iter().any(|q| overlaps(g, q))).count();
        bar.inc(1);
    }
    bar.finish();
    for c in strict.values() {
        micro.tp += c.tp;
        micro.pred += c.pred;
        micro.gold += c.gold;
    }
    let per_type: serde_json::Map<String, serde_json::Value> =
        strict.iter().map(|(t, c)| (t.clone(), c.prf())).collect();
    eprintln!("{:<28} {:>6} {:>6} {:>6} {:>6}", "type", "P", "R", "F1", "gold");
    let mut rows: Vec<_> = strict.iter().collect();
    rows.sort_by_key(|(_, c)| std::cmp::Reverse(c.gold));
    for (t, c) in rows {
        let v = c.prf();
        eprintln!("{t:<28} {:>6.3} {:>6.3} {:>6.3} {:>6}", v["precision"].as_f64().unwrap(), v["recall"].as_f64().unwrap(), v["f1"].as_f64().unwrap(), c.gold);
    }
    let summary = json!({
        "documents": ids.len(),
        "strict": {"micro": micro.prf(), "per_type": per_type},
        "relaxed": {"micro": relaxed.prf()},
    });
    println!("{summary}");
    Ok(())
}
