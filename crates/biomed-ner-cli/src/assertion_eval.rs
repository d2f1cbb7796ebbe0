//! `biomed-ner eval --assertion`: how well the assertion rules tell present, absent and
//! possible findings apart on a brat corpus whose events carry `POLARITY` attributes
//! (MACCROBAT: `NEG` is absent; `UNCERTAIN`, `MAYBE_POS` and `MAYBE_NEG` are possible; no
//! attribute, or `POS`, is present).
//!
//! Two scores, each per class (precision, recall, F1):
//! - gold spans: the trigger spans of the corpus's events of the asserted types, asserted with
//!   their gold type: the rules alone;
//! - end to end: the model's entities of the asserted types, asserted; a prediction pairs with
//!   the gold event span it overlaps. A pair is correct when both say the same class; a
//!   prediction with no gold span counts against its class's precision, a gold span with no
//!   prediction against its class's recall.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use biomed_ner_engine::assertion::{assert_spans, Assertion, ASSERTED_GROUPS};
use biomed_ner_engine::{Options, Pipeline};
use serde_json::json;

use crate::args::EvalArgs;

/// A gold event span: start, end (code points, trimmed), type, assertion.
type Gold = (usize, usize, String, Assertion);

/// The event trigger spans of the asserted types in one `.ann` file, with their assertion.
pub fn read_polarity(ann: &str, chars: &[char]) -> Result<Vec<Gold>, String> {
    let mut spans: HashMap<&str, (String, usize, usize)> = HashMap::new();
    let mut events: HashMap<&str, &str> = HashMap::new();
    let mut polarity: HashMap<&str, &str> = HashMap::new();
    for (i, line) in ann.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        let bad = || format!("line {}: cannot read \"{line}\"", i + 1);
        match line.chars().next() {
            Some('T') => {
                let (ty, ranges) = fields.get(1).and_then(|f| f.split_once(' ')).ok_or_else(bad)?;
                let mut bounds = Vec::new();
                for frag in ranges.split(';') {
                    let (a, b) = frag.trim().split_once(' ').ok_or_else(bad)?;
                    bounds.push((a.parse::<usize>().map_err(|_| bad())?, b.parse::<usize>().map_err(|_| bad())?));
                }
                let (s, e) = (bounds.iter().map(|b| b.0).min().unwrap(), bounds.iter().map(|b| b.1).max().unwrap());
                spans.insert(fields[0], (ty.to_string(), s, e));
            }
            Some('E') => {
                let trigger = fields.get(1).and_then(|f| f.split_whitespace().next()).ok_or_else(bad)?;
                events.insert(fields[0], trigger.split_once(':').ok_or_else(bad)?.1);
            }
            Some('A') => {
                let parts: Vec<&str> = fields.get(1).ok_or_else(bad)?.split_whitespace().collect();
                if parts.len() == 3 && parts[0] == "POLARITY" {
                    polarity.insert(parts[1], parts[2]);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (event, trigger) in &events {
        let Some((ty, s, e)) = spans.get(trigger) else { continue };
        if !ASSERTED_GROUPS.contains(&ty.as_str()) || !seen.insert(*trigger) {
            continue;
        }
        let label = match polarity.get(event).copied() {
            Some("NEG") => Assertion::Absent,
            Some("UNCERTAIN" | "MAYBE_POS" | "MAYBE_NEG") => Assertion::Possible,
            _ => Assertion::Present,
        };
        if let Some((s, e)) = crate::eval::trim(chars, *s, *e) {
            out.push((s, e, ty.clone(), label));
        }
    }
    out.sort_by_key(|g| (g.0, g.1));
    Ok(out)
}

#[derive(Default)]
struct Scores {
    /// (gold, predicted) counts; None where one side has no span.
    pairs: HashMap<(Option<Assertion>, Option<Assertion>), usize>,
}

impl Scores {
    fn add(&mut self, gold: Option<Assertion>, pred: Option<Assertion>) {
        *self.pairs.entry((gold, pred)).or_default() += 1;
    }

    fn report(&self) -> serde_json::Value {
        let count = |f: &dyn Fn(Option<Assertion>, Option<Assertion>) -> bool| {
            self.pairs.iter().filter(|((g, p), _)| f(*g, *p)).map(|(_, n)| n).sum::<usize>()
        };
        let mut out = serde_json::Map::new();
        for class in [Assertion::Present, Assertion::Absent, Assertion::Possible] {
            let c = Some(class);
            let tp = count(&|g, p| g == c && p == c);
            let pred = count(&|_, p| p == c);
            let gold = count(&|g, _| g == c);
            let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
            let (p, r) = (ratio(tp, pred), ratio(tp, gold));
            let f = if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
            let round = |x: f64| (x * 10000.0).round() / 10000.0;
            out.insert(
                class.as_str().into(),
                json!({"precision": round(p), "recall": round(r), "f1": round(f), "tp": tp, "pred": pred, "gold": gold}),
            );
        }
        serde_json::Value::Object(out)
    }
}

pub fn run(p: &Pipeline, opts: &Options, args: &EvalArgs, progress: crate::progress::Mode) -> Result<(), String> {
    let ids = crate::eval::doc_ids(args)?;
    let bar = crate::progress::notes(progress, Some(ids.len() as u64));
    let read = |id: &str, ext: &str| -> Result<String, String> {
        let path = Path::new(&args.brat).join(format!("{id}.{ext}"));
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let (mut on_gold, mut end_to_end) = (Scores::default(), Scores::default());
    // BIOMED_NER_ASSERTION_FEATURES=FILE writes the gold spans' features and labels, which
    // train/assertion.py learns from; the end-to-end score, which needs the model's pass over
    // every report, is then left out.
    let mut features = match std::env::var_os("BIOMED_NER_ASSERTION_FEATURES") {
        Some(path) => Some(std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| format!("{path:?}: {e}"))?)),
        None => None,
    };
    for id in &ids {
        let text = read(id, "txt")?;
        let chars: Vec<char> = text.chars().collect();
        let gold = read_polarity(&read(id, "ann")?, &chars).map_err(|e| format!("{id}.ann: {e}"))?;
        let spans: Vec<(usize, usize, Option<&str>)> = gold.iter().map(|g| (g.0, g.1, Some(g.2.as_str()))).collect();
        for (g, a) in gold.iter().zip(assert_spans(&text, &spans)) {
            on_gold.add(Some(g.3), Some(a));
        }
        if let Some(out) = features.as_mut() {
            for (g, a) in gold.iter().zip(biomed_ner_engine::assertion::analyse(&text, &spans)) {
                let line = json!({"doc": id, "label": g.3.as_str(), "features": a.features});
                writeln!(out, "{line}").map_err(|e| e.to_string())?;
            }
        }
        if features.is_some() {
            continue;
        }
        let entities = p.annotate(&[&text], opts, &mut || Ok(())).map_err(|e| e.to_string())?.remove(0);
        let entities: Vec<_> = entities.iter().filter(|e| ASSERTED_GROUPS.contains(&e.group.as_str())).collect();
        let spans: Vec<(usize, usize, Option<&str>)> = entities.iter().map(|e| (e.start, e.end, Some(e.group.as_str()))).collect();
        let asserted = assert_spans(&text, &spans);
        let mut found = vec![false; gold.len()];
        for (e, a) in entities.iter().zip(asserted) {
            match gold.iter().position(|g| g.0 < e.end && e.start < g.1) {
                Some(i) if !found[i] => {
                    found[i] = true;
                    end_to_end.add(Some(gold[i].3), Some(a));
                }
                // A second prediction on a gold span already paired is an extra prediction.
                _ => end_to_end.add(None, Some(a)),
            }
        }
        for (g, _) in gold.iter().zip(&found).filter(|(_, f)| !**f) {
            end_to_end.add(Some(g.3), None);
        }
        bar.inc(1);
    }
    bar.finish();
    let summary = json!({
        "documents": ids.len(),
        "assertion": {"gold_spans": on_gold.report(), "end_to_end": end_to_end.report()},
    });
    for (name, s) in [("gold spans", &summary["assertion"]["gold_spans"]), ("end to end", &summary["assertion"]["end_to_end"])] {
        for c in Assertion::NAMES {
            let v = &s[c];
            eprintln!("{name:<11} {c:<9} P {:.3} R {:.3} F1 {:.3} (gold {})", v["precision"].as_f64().unwrap(),
                v["recall"].as_f64().unwrap(), v["f1"].as_f64().unwrap(), v["gold"]);
        }
    }
    println!("{summary}");
    Ok(())
}
